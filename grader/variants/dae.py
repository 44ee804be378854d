"""Variants of notebook 2_dae: wrong implementations each grade cell must catch, and correct rewrites it must accept.

The hidden checks make their own noise and train with their own loops, and the wrong variants below
are submitted with the reference checkpoints (so their classes keep the reference's layers where the
checkpoint must still load): a wrong `add_noise` loses exactly its cell, a DAE without its gate the
cells that need the gate, and so on.
"""
from __future__ import annotations

from grader.variants import Variant

NOTEBOOK = "2_dae"


def _variant(name: str, description: str, fails: set[str] = frozenset(), **kwargs) -> Variant:
    return Variant(name=name, notebook=NOTEBOOK, description=description, fails=frozenset(fails), **kwargs)


def _add_noise(body: str) -> dict[str, str]:
    return {"add_noise": "def add_noise(x, std=0.2):\n" + _indent(body, 4) + "\n"}


def _indent(code: str, spaces: int = 8) -> str:
    return "\n".join(" " * spaces + line for line in code.strip().splitlines())


# The reference DAE's layers (so the reference checkpoint loads) with forward left open.
DAE_TEMPLATE = '''
class DAE(nn.Module):
    def __init__(self, n_components=10):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 250), nn.ReLU(),
            nn.Linear(250, 250), nn.ReLU(),
            nn.Linear(250, {code_size}),
        )
        self.decoder = nn.Sequential(
            nn.Linear({code_size}, 250), nn.ReLU(),
            nn.Linear(250, 250), nn.ReLU(),
            nn.Linear(250, 784),
            nn.Unflatten(1, (1, 28, 28)),
        )

    def forward(self, x):
{forward}
'''


def _dae(forward: str, code_size: str = "n_components") -> dict[str, str]:
    return {"dae": DAE_TEMPLATE.format(code_size=code_size, forward=_indent(forward))}


# The reference SuperResolution's layers with forward left open (and one layer size to change).
SUPERRES_TEMPLATE = '''
class SuperResolution(nn.Module):
    def __init__(self):
        super().__init__()
        self.correction = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, {kernel}, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, 3, padding=1),
        )

    def forward(self, x):
{forward}
'''


def _superres(forward: str, kernel: int = 4) -> dict[str, str]:
    return {"super_resolution": SUPERRES_TEMPLATE.format(kernel=kernel, forward=_indent(forward))}


MLP_DENOISER_TEMPLATE = '''
class MLPDenoiser(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.Sigmoid(), nn.Linear(128, {code}), {code_activation})
        self.decoder = nn.Sequential(nn.Linear({code}, 128), nn.Sigmoid(), nn.Linear(128, 784), {output_activation},
                                     nn.Unflatten(1, (1, 28, 28)))

    def forward(self, x):
        codes = self.encoder(x)
        return codes, self.decoder(codes)
'''


def _mlp_denoiser(code: int = 32, code_activation: str = "nn.Sigmoid()", output_activation: str = "nn.Sigmoid()") -> dict:
    """The cells of an MLPDenoiser with the given code size and activations."""
    return {"mlp_denoiser": MLP_DENOISER_TEMPLATE.format(code=code, code_activation=code_activation,
                                                         output_activation=output_activation)}


WRONG = [
    # add_noise
    _variant("noise_clipped", "add_noise clips the noisy images to [0, 1]", {"test_add_noise"},
             cells=_add_noise("return torch.clamp(x + std * torch.randn_like(x), 0.0, 1.0)")),
    _variant("noise_std_squared", "add_noise scales the noise by std ** 2 (the variance)", {"test_add_noise"},
             cells=_add_noise("return x + std ** 2 * torch.randn_like(x)")),
    _variant("noise_fixed_seed", "add_noise fixes the seed inside, so every call adds the same noise",
             {"test_add_noise"}, cells=_add_noise('''
torch.manual_seed(0)
return x + std * torch.randn_like(x)
''')),
    _variant("noise_in_place", "add_noise adds the noise to x in place", {"test_add_noise"},
             cells=_add_noise("return x.add_(std * torch.randn_like(x))")),
    _variant("noise_one_value_per_image", "add_noise draws one noise value per image, broadcast over its pixels",
             {"test_add_noise"}, cells=_add_noise("return x + std * torch.randn(len(x), 1, 1, 1)")),
    # MLPDenoiser
    _variant("mlp_denoiser_relu_code", "MLPDenoiser's code layer uses a ReLU instead of a sigmoid",
             {"test_mlp_denoiser"}, cells=_mlp_denoiser(code_activation="nn.ReLU()")),
    _variant("mlp_denoiser_without_output_sigmoid", "MLPDenoiser's output layer has no sigmoid",
             {"test_mlp_denoiser"}, cells=_mlp_denoiser(output_activation="nn.Identity()")),
    _variant("mlp_denoiser_code_64", "MLPDenoiser has a 64-unit code instead of 32", {"test_mlp_denoiser"},
             cells=_mlp_denoiser(code=64)),
    _variant("missing_mlp_checkpoint", "2_dae_mlp.pth was not submitted", {"test_mlp_denoiser"},
             files={"2_dae_mlp.pth": "missing"}),
    # Denoiser
    _variant("denoiser_without_sigmoid", "the Denoiser's last sigmoid is missing (the checkpoint still loads)",
             {"test_denoiser_trained"}, cells={"denoiser": '''
class Denoiser(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1))

    def forward(self, x):
        return self.decoder(self.encoder(x))
'''}),
    # DAE
    _variant("dae_without_gate", "the DAE returns the decoder's output, a plain autoencoder",
             {"test_dae_gate", "test_dae_learns", "test_dae_trained"},
             cells=_dae("z = self.encoder(x.abs())\nreturn z, self.decoder(z)")),
    _variant("dae_additive_gate", "the DAE adds the decoder's output to its input instead of gating it",
             {"test_dae_gate", "test_dae_learns", "test_dae_trained"},
             cells=_dae("z = self.encoder(x.abs())\nreturn z, x + self.decoder(z)")),
    _variant("dae_gate_on_constant", "the DAE gates a constant image of ones instead of its input",
             {"test_dae_gate", "test_dae_learns", "test_dae_trained"},
             cells=_dae("z = self.encoder(x.abs())\nreturn z, torch.ones_like(x) * torch.sigmoid(self.decoder(z))")),
    _variant("dae_gate_on_abs", "the DAE gates |x|, losing the signs of the pixels (the gate test cannot see it)",
             {"test_dae_learns", "test_dae_trained"},
             cells=_dae("z = self.encoder(x.abs())\nreturn z, x.abs() * torch.sigmoid(self.decoder(z))")),
    _variant("dae_fixed_code_size", "the DAE ignores n_components and always makes 16-D codes",
             {"test_dae", "test_dae_trained"},
             cells=_dae("z = self.encoder(x.abs())\nreturn z, x * torch.sigmoid(self.decoder(z))", code_size="16")),
    # SuperResolution
    _variant("superres_bicubic_only", "SuperResolution is bicubic interpolation with nothing to learn",
             {"test_super_resolution_learns", "test_super_resolution_trained"}, cells={"super_resolution": '''
class SuperResolution(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
'''}),
    _variant("superres_correction_unused", "SuperResolution has the layers but returns the bicubic upsampling only",
             {"test_super_resolution_learns", "test_super_resolution_trained"},
             cells=_superres("return F.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False) + 0 * self.correction(x)")),
    _variant("superres_wrong_size", "SuperResolution's transposed convolution gives 27x27 images",
             {"test_super_resolution", "test_super_resolution_learns", "test_super_resolution_trained"},
             cells=_superres("return F.interpolate(x, size=(27, 27), mode='bicubic', align_corners=False) + self.correction(x)",
                             kernel=3)),
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
             cells=_dae('''
z = self.encoder(torch.abs(x))
f = self.decoder(z)
return z, x / (1 + torch.exp(-f))
''')),
    _variant("superres_interpolate_by_size", "SuperResolution upsamples with size=(28, 28) and torch.add",
             cells=_superres('''
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
