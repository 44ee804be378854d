"""Variants of notebook 2_dae: wrong implementations each grade cell must catch, and correct rewrites it must accept.

The hidden checks make their own noise and train with their own loops, and the wrong variants below
are submitted with the reference checkpoints (so their classes keep the reference's layers where the
checkpoint must still load): a wrong `add_noise` loses exactly its cell, a DAE without its gate the
cells that need the gate, and so on.
"""
from __future__ import annotations

from grader.variants import Variant, from_reference

NOTEBOOK = "2_dae"


def _variant(name: str, description: str, fails: set[str] = frozenset(), **kwargs) -> Variant:
    return Variant(name=name, notebook=NOTEBOOK, description=description, fails=frozenset(fails), **kwargs)


def _edit(grade_id: str, *replacements: tuple[str, str]) -> dict[str, str]:
    """The cells of a variant that changes the reference solution of `grade_id` by `replacements`."""
    return {grade_id: from_reference(NOTEBOOK, grade_id, *replacements)}


def _add_noise(body: str) -> dict[str, str]:
    return {"add_noise": "def add_noise(x, std=0.2):\n" + _indent(body, 4) + "\n"}


def _indent(code: str, spaces: int = 8) -> str:
    return "\n".join(" " * spaces + line for line in code.strip().splitlines())


# The bodies of the reference's forward methods that variants rewrite (keeping the layers, so the reference
# checkpoints still load).
DAE_FORWARD = "z = self.encoder(x.abs())\n        return z, x * torch.sigmoid(self.decoder(z))"
SUPERRES_FORWARD = ('upsampled = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)\n'
                    '        return upsampled + self.correction(x)')


def _dae_forward(forward: str) -> dict[str, str]:
    """The reference DAE with another forward."""
    return _edit("dae", (DAE_FORWARD, _indent(forward).lstrip()))


def _superres_forward(forward: str, *replacements: tuple[str, str]) -> dict[str, str]:
    """The reference SuperResolution with another forward (and `replacements` in its layers)."""
    return _edit("super_resolution", *replacements, (SUPERRES_FORWARD, _indent(forward).lstrip()))


WRONG = [
    # add_noise
    _variant("noise_clipped", "add_noise clips the noisy images to [0, 1]", {"test_add_noise"},
             cells=_edit("add_noise", ("x + std * torch.randn_like(x)",
                                       "torch.clamp(x + std * torch.randn_like(x), 0.0, 1.0)"))),
    _variant("noise_std_squared", "add_noise scales the noise by std ** 2 (the variance)", {"test_add_noise"},
             cells=_edit("add_noise", ("std * torch", "std ** 2 * torch"))),
    _variant("noise_fixed_seed", "add_noise fixes the seed inside, so every call adds the same noise",
             {"test_add_noise"}, cells=_edit("add_noise", ("    return", "    torch.manual_seed(0)\n    return"))),
    _variant("noise_in_place", "add_noise adds the noise to x in place", {"test_add_noise"},
             cells=_edit("add_noise", ("x + std * torch.randn_like(x)", "x.add_(std * torch.randn_like(x))"))),
    _variant("noise_one_value_per_image", "add_noise draws one noise value per image, broadcast over its pixels",
             {"test_add_noise"}, cells=_edit("add_noise", ("torch.randn_like(x)", "torch.randn(len(x), 1, 1, 1)"))),
    # MLPDenoiser
    _variant("mlp_denoiser_relu_code", "MLPDenoiser's code layer uses a ReLU instead of a sigmoid",
             {"test_mlp_denoiser"},
             cells=_edit("mlp_denoiser", ("nn.Linear(128, 32), nn.Sigmoid())", "nn.Linear(128, 32), nn.ReLU())"))),
    _variant("mlp_denoiser_without_output_sigmoid", "MLPDenoiser's output layer has no sigmoid",
             {"test_mlp_denoiser"}, cells=_edit("mlp_denoiser", ("nn.Linear(128, 784), nn.Sigmoid(),",
                                                                 "nn.Linear(128, 784), nn.Identity(),"))),
    _variant("mlp_denoiser_code_64", "MLPDenoiser has a 64-unit code instead of 32", {"test_mlp_denoiser"},
             cells=_edit("mlp_denoiser", ("nn.Linear(128, 32)", "nn.Linear(128, 64)"),
                         ("nn.Linear(32, 128)", "nn.Linear(64, 128)"))),
    _variant("missing_mlp_checkpoint", "2_dae_mlp.pth was not submitted", {"test_mlp_denoiser"},
             files={"2_dae_mlp.pth": "missing"}),
    # Denoiser
    _variant("denoiser_without_sigmoid", "the Denoiser's last sigmoid is missing (the checkpoint still loads)",
             {"test_denoiser_trained"},
             cells=_edit("denoiser", ("nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Sigmoid(),",
                                      "nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),"))),
    # DAE
    _variant("dae_without_gate", "the DAE returns the decoder's output, a plain autoencoder",
             {"test_dae_gate", "test_dae_learns", "test_dae_trained"},
             cells=_edit("dae", ("x * torch.sigmoid(self.decoder(z))", "self.decoder(z)"))),
    _variant("dae_additive_gate", "the DAE adds the decoder's output to its input instead of gating it",
             {"test_dae_gate", "test_dae_learns", "test_dae_trained"},
             cells=_edit("dae", ("x * torch.sigmoid(self.decoder(z))", "x + self.decoder(z)"))),
    _variant("dae_gate_on_constant", "the DAE gates a constant image of ones instead of its input",
             {"test_dae_gate", "test_dae_learns", "test_dae_trained"},
             cells=_edit("dae", ("return z, x *", "return z, torch.ones_like(x) *"))),
    _variant("dae_gate_on_abs", "the DAE gates |x|, losing the signs of the pixels (the gate test cannot see it)",
             {"test_dae_learns", "test_dae_trained"},
             cells=_edit("dae", ("return z, x *", "return z, x.abs() *"))),
    _variant("dae_fixed_code_size", "the DAE ignores n_components and always makes 16-D codes",
             {"test_dae", "test_dae_trained"},
             cells=_edit("dae", ("nn.Linear(250, n_components)", "nn.Linear(250, 16)"),
                         ("nn.Linear(n_components, 250)", "nn.Linear(16, 250)"))),
    # SuperResolution
    _variant("superres_bicubic_only", "SuperResolution is bicubic interpolation with nothing to learn",
             {"test_super_resolution_learns", "test_super_resolution_trained"}, cells={"super_resolution": '''
class SuperResolution(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
'''}),
    _variant("superres_correction_unused", "SuperResolution has the layers but returns the bicubic upsampling only",
             {"test_super_resolution_learns", "test_super_resolution_trained"},
             cells=_superres_forward("return F.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False)"
                                     " + 0 * self.correction(x)")),
    _variant("superres_wrong_size", "SuperResolution's transposed convolution gives 27x27 images",
             {"test_super_resolution", "test_super_resolution_learns", "test_super_resolution_trained"},
             cells=_superres_forward("return F.interpolate(x, size=(27, 27), mode='bicubic', align_corners=False)"
                                     " + self.correction(x)",
                                     ("nn.ConvTranspose2d(32, 16, 4,", "nn.ConvTranspose2d(32, 16, 3,"))),
    _variant("superres_ignores_input", "SuperResolution learns one fixed image and ignores its input",
             {"test_super_resolution_learns", "test_super_resolution_trained"}, cells={"super_resolution": '''
class SuperResolution(nn.Module):
    def __init__(self):
        super().__init__()
        self.image = nn.Parameter(torch.zeros(1, 1, 28, 28))

    def forward(self, x):
        return self.image.expand(len(x), 1, 28, 28)
'''}),
    # checkpoints
    _variant("missing_denoiser_checkpoint", "2_dae_denoiser.pth was not submitted", {"test_denoiser_trained"},
             files={"2_dae_denoiser.pth": "missing"}),
    _variant("garbage_dae_checkpoint", "2_dae_variance.pth is not a checkpoint at all", {"test_dae_trained"},
             files={"2_dae_variance.pth": "garbage"}),
    _variant("pickle_payload_superres_checkpoint", "2_dae_superres.pth is a pickle that runs code when unpickled",
             {"test_super_resolution_trained"}, files={"2_dae_superres.pth": "pickle_payload"}),
]

CORRECT = [
    _variant("mlp_denoiser_reshaped_in_forward", "MLPDenoiser flattens and reshapes in forward with view",
             cells={"mlp_denoiser": '''
class MLPDenoiser(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Identity(), nn.Linear(28 * 28, 128), nn.Sigmoid(), nn.Linear(128, 32), nn.Sigmoid())
        self.decoder = nn.Sequential(nn.Linear(32, 128), nn.Sigmoid(), nn.Linear(128, 28 * 28), nn.Sigmoid())

    def forward(self, x):
        z = self.encoder(x.view(x.size(0), -1))
        return z, self.decoder(z).view(x.size(0), 1, 28, 28)
'''}),
    _variant("noise_with_torch_normal", "add_noise via torch.normal(mean=x, std=std)",
             cells=_add_noise("return torch.normal(mean=x, std=std)")),
    _variant("noise_with_distributions", "add_noise via torch.distributions.Normal(x, std).sample()",
             cells=_add_noise('''
from torch.distributions import Normal
return Normal(x, std).sample()
''')),
    _variant("dae_gate_written_out", "the DAE's gate written as x / (1 + exp(-f)) with torch.abs",
             cells=_dae_forward('''
z = self.encoder(torch.abs(x))
f = self.decoder(z)
return z, x / (1 + torch.exp(-f))
''')),
    _variant("superres_interpolate_by_size", "SuperResolution upsamples with size=(28, 28) and torch.add",
             cells=_superres_forward('''
base = F.interpolate(x, size=(28, 28), mode="bicubic", align_corners=False)
return torch.add(self.correction(x), base)
''')),
    _variant("other_architectures_retrained", "an MLPDenoiser with named layers, an MLP Denoiser, a convolutional DAE on x ** 2 and an "
             "upsample-then-convolve SuperResolution, trained by the student", retrain=True, cells={"mlp_denoiser": '''
class MLPDenoiser(nn.Module):
    """The shared configuration written with named layers and functional sigmoids."""

    def __init__(self):
        super().__init__()
        self.hidden_in = nn.Linear(784, 128)
        self.code = nn.Linear(128, 32)
        self.hidden_out = nn.Linear(32, 128)
        self.pixels = nn.Linear(128, 784)

    def forward(self, x):
        z = torch.sigmoid(self.code(torch.sigmoid(self.hidden_in(x.flatten(1)))))
        y = torch.sigmoid(self.pixels(torch.sigmoid(self.hidden_out(z))))
        return z, y.reshape(-1, 1, 28, 28)
''', "denoiser": '''
class Denoiser(nn.Module):
    """A fully connected denoiser without a narrow bottleneck."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 512)
        self.out = nn.Linear(512, 784)

    def forward(self, x):
        return torch.sigmoid(self.out(F.relu(self.hidden(x.flatten(1))))).view_as(x)
''', "dae": '''
class DAE(nn.Module):
    """Convolutional encoder on the squared pixels, linear code, convolutional decoder of the gate."""

    def __init__(self, n_components=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.to_code = nn.Linear(16 * 7 * 7, n_components)
        self.from_code = nn.Linear(n_components, 16 * 7 * 7)
        self.up1 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1)

    def forward(self, x):
        h = F.relu(self.conv2(F.relu(self.conv1(x ** 2))))
        z = self.to_code(h.flatten(1))
        g = F.relu(self.from_code(z)).view(-1, 16, 7, 7)
        logits = self.up2(F.relu(self.up1(g)))
        return z, torch.sigmoid(logits) * x
''', "super_resolution": '''
class SuperResolution(nn.Module):
    """Nearest-neighbour upsampling followed by convolutions (no skip connection)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(),
            nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, 3, padding=1),
        )

    def forward(self, x):
        return self.layers(x)
'''}),
]

VARIANTS = WRONG + CORRECT
# The demo grades these beside the reference and the blank release.
DEMO = ("noise_std_squared", "dae_without_gate", "superres_bicubic_only")
