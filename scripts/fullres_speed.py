"""Seconds and peak memory of one full-resolution fill (issue 22's 24 MP figure), in a fresh process.

    /usr/bin/time -v python scripts/fullres_speed.py PHOTO --size 6000x4000 --ratio 0.05 --strategy detail

The photo is resized (bicubic) to --size, an object-shaped hole of --ratio is drawn with seed 0, and the
shipped default fills it; the fill's seconds and the process's peak resident memory are printed.
"""

import argparse
import resource
import time

import cv2
import numpy as np

from inpaintlab import InpaintPipeline
from inpaintlab.data import load_image
from inpaintlab.masks import object_mask

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("photo")
parser.add_argument("--size", default="6000x4000", help="WxH")
parser.add_argument("--ratio", type=float, default=0.05)
parser.add_argument("--strategy", default="detail")
args = parser.parse_args()
width, height = (int(v) for v in args.size.split("x"))
picture = cv2.resize(load_image(args.photo), (width, height), interpolation=cv2.INTER_CUBIC)
hole = object_mask(height, width, args.ratio, np.random.default_rng(0)) > 0
pipe = InpaintPipeline.from_pretrained()
began = time.perf_counter()
pipe(picture, hole, strategy=args.strategy)
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(
    f"{width}x{height} ({width * height / 1e6:.1f} MP), hole {hole.mean():.1%}, {args.strategy}: {seconds:.2f} s, peak RSS {peak:.2f} GB"
)
