"""Full-resolution crops around the hole, side by side: original | telea | resize | detail (docs picture).

    python scripts/fullres_crops.py ../shared/highres_photos/A.jpg ... --out docs/results_fullres_crops.jpg

Each photo gets a 15 % object-shaped hole (seed 0); the crop (--crop px square, at the photo's own
resolution) is centred on the hole; the shipped default fills it with each strategy, Telea as a baseline.
"""

import argparse

import cv2
import numpy as np
from PIL import Image

from inpaintlab import InpaintPipeline
from inpaintlab.data import load_image
from inpaintlab.masks import object_mask

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("photos", nargs="+")
parser.add_argument("--crop", type=int, default=360)
parser.add_argument("--ratio", type=float, default=0.15)
parser.add_argument("--out", required=True)
args = parser.parse_args()
network = InpaintPipeline.from_pretrained(smooth_threshold=0)
telea = InpaintPipeline.from_checkpoint("telea")
rows = []
for path in args.photos:
    picture = load_image(path)
    hole = object_mask(*picture.shape[:2], args.ratio, np.random.default_rng(0)) > 0
    outline = picture.copy()
    contours, _ = cv2.findContours(hole.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(outline, contours, -1, (255, 0, 0), 2)
    panels = [outline, telea(picture, hole), network(picture, hole, strategy="resize"), network(picture, hole, strategy="detail")]
    ys, xs = np.nonzero(hole)
    top = int(np.clip(ys.mean() - args.crop // 2, 0, picture.shape[0] - args.crop))
    left = int(np.clip(xs.mean() - args.crop // 2, 0, picture.shape[1] - args.crop))
    crops = [np.asarray(p)[top : top + args.crop, left : left + args.crop] for p in panels]
    rows.append(np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in crops], 1))
Image.fromarray(np.concatenate(rows, 0)).save(args.out, quality=88)
print(f"wrote {args.out}: rows = photos; columns = original (hole outlined) | telea | resize | detail")
