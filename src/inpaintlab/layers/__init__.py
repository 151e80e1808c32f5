"""Reusable layers, one module per building block; import from the module that names them, e.g.
``from inpaintlab.layers.attention import AttentionModule``.

attention:        LGNet/RFR self-attention (direct and fast forms) and its 1x1 combiner module.
blocks:           pix2pix residual block and pix2pix weight initialisation.
partial_conv:     NVIDIA-style partial convolution.
pixel_attention:  MSA-Net pixelwise contextual attention and SE fusion.
atm:              PEN-Net / SRPNet attention transfer.
cbam:             CBAM channel + spatial attention.
sti:              CSTFNet structure-/texture-aware inpainting and fusion.
memory:           CICM cross-image context memory and the block that augments features with it.
"""
