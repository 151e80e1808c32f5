"""Small modules shared by tests that train toy generators (imported as ``from toys import ...``)."""

from torch import nn

from inpaintlab.types import InpaintDiscriminator


class PatchD(InpaintDiscriminator):
    """A two-conv patch discriminator that ignores the mask."""

    takes_mask = False

    def __init__(self, ndf: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(ndf, 1, 3, 1, 1))

    def forward(self, image, mask=None):
        return self.net(image)
