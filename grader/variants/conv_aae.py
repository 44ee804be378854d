"""Variants of notebook 5_conv_aae: wrong implementations each grade cell must catch, and correct rewrites it must accept.

The checks of the trained models and of the short training runs use the grader's own losses, and
the variants below (except the retrained one) are submitted with the reference checkpoints, so a
wrong loss loses exactly the cell that tests it. The encoder, decoder and VAE classes fix the
layout of the checkpoints: a different correct architecture has to be trained anew
(`other_architectures_retrained`), and tests/test_pipeline.py grades it through nbgrader, every
check included (the interface and short training ones too).
"""
from __future__ import annotations

from grader.variants import Variant, from_reference, reference_definition

NOTEBOOK = "5_conv_aae"
TRAINED = {"test_conv_ae_trained", "test_conv_vae_trained", "test_aae_trained"}


def _variant(name: str, description: str, fails: set[str] = frozenset(), **kwargs) -> Variant:
    return Variant(name=name, notebook=NOTEBOOK, description=description, fails=frozenset(fails), **kwargs)


# The reference ConvDecoder, kept beside a rewritten ConvEncoder.
REFERENCE_DECODER = reference_definition(NOTEBOOK, "conv_encoder_decoder", "ConvDecoder")

MLP_ENCODER = '''
class ConvEncoder(nn.Module):
    """Not convolutional at all: a fully connected encoder."""

    def __init__(self, n_components):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, n_components))

    def forward(self, x):
        return self.layers(x)
''' + REFERENCE_DECODER

# Convolutions after a fully connected first layer: two nn.Conv2d, but the image is flattened first.
LINEAR_FIRST_ENCODER = '''
class ConvEncoder(nn.Module):
    """A linear layer on the flattened image first, convolutions only afterwards."""

    def __init__(self, n_components):
        super().__init__()
        self.first = nn.Linear(784, 784)
        self.convs = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        self.out = nn.Linear(32 * 7 * 7, n_components)

    def forward(self, x):
        h = F.relu(self.first(x.flatten(1))).view(-1, 1, 28, 28)
        return self.out(self.convs(h))
''' + REFERENCE_DECODER

# The alternative architectures of the retrained variant (also used by tests/test_checks_conv_aae.py).
POOLING_ENCODER_UPSAMPLING_DECODER = '''
class ConvEncoder(nn.Module):
    """Stride-1 convolutions, each followed by 2x2 max-pooling, then a linear layer."""

    def __init__(self, n_components):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.fc = nn.Linear(16 * 7 * 7, n_components)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return self.fc(h.flatten(start_dim=1))


class ConvDecoder(nn.Module):
    """A linear layer to 16 maps of 7 x 7, then nearest-neighbour upsampling and convolutions."""

    def __init__(self, n_components):
        super().__init__()
        self.fc = nn.Linear(n_components, 16 * 7 * 7)
        self.up = nn.Upsample(scale_factor=2)
        self.conv1 = nn.Conv2d(16, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 1, kernel_size=3, padding=1)

    def forward(self, z):
        h = F.relu(self.fc(z)).reshape(len(z), 16, 7, 7)
        h = F.relu(self.conv1(self.up(h)))
        return torch.sigmoid(self.conv2(self.up(h)))
'''

TWO_HEADS_VAE = '''
class ConvVAE(nn.Module):
    """A convolutional body with separate mean and log-variance heads; sampling with torch.distributions."""

    def __init__(self, n_components):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(16, 32, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Flatten(),
        )
        self.mean_head = nn.Linear(32 * 7 * 7, n_components)
        self.logvar_head = nn.Linear(32 * 7 * 7, n_components)
        self.decoder = ConvDecoder(n_components)

    def forward(self, x):
        hidden = self.body(x)
        z_mean, z_logvar = self.mean_head(hidden), self.logvar_head(hidden)
        z = torch.distributions.Normal(z_mean, torch.exp(0.5 * z_logvar)).rsample()
        return self.decoder(z), z_mean, z_logvar
'''

OTHER_DISCRIMINATOR = '''
class Discriminator(nn.Module):
    """Two hidden layers of 64 leaky-ReLU units, written layer by layer."""

    def __init__(self, n_components):
        super().__init__()
        self.hidden1 = nn.Linear(n_components, 64)
        self.hidden2 = nn.Linear(64, 64)
        self.out = nn.Linear(64, 1)

    def forward(self, z):
        h = F.leaky_relu(self.hidden1(z), 0.2)
        h = F.leaky_relu(self.hidden2(h), 0.2)
        return self.out(h)
'''

SIGMOID_DISCRIMINATOR = from_reference(NOTEBOOK, "discriminator",
                                       ("nn.Linear(128, 1),", "nn.Linear(128, 1), nn.Sigmoid(),"))


def _indent(code: str) -> str:
    return "\n".join("        " + line for line in code.strip().splitlines())


def _vae_forward(forward: str) -> dict[str, str]:
    """The reference ConvVAE (its layers, so the reference checkpoint loads) with another forward."""
    return {"conv_vae": from_reference(NOTEBOOK, "conv_vae", (
        "z_mean, z_logvar = self.encoder(x).chunk(2, dim=1)\n"
        "        z = z_mean + torch.exp(0.5 * z_logvar) * torch.randn_like(z_mean)\n"
        "        return self.decoder(z), z_mean, z_logvar", _indent(forward).lstrip()))}


WRONG = [
    _variant("encoder_without_convolution", "ConvEncoder is a fully connected MLP (Flatten + Linear)",
             {"test_conv_encoder_decoder", "test_conv_vae"} | TRAINED, cells={"conv_encoder_decoder": MLP_ENCODER}),
    _variant("encoder_linear_first", "ConvEncoder flattens the image into a Linear layer before its two convolutions",
             {"test_conv_encoder_decoder", "test_conv_vae"} | TRAINED,
             cells={"conv_encoder_decoder": LINEAR_FIRST_ENCODER}),
    _variant("vae_decodes_the_mean", "ConvVAE.forward decodes z_mean without sampling", {"test_conv_vae"},
             cells=_vae_forward('''
z_mean, z_logvar = self.encoder(x).chunk(2, dim=1)
return self.decoder(z_mean), z_mean, z_logvar
''')),
    _variant("vae_std_is_the_variance", "ConvVAE samples with exp(z_logvar) as the standard deviation", {"test_conv_vae"},
             cells=_vae_forward('''
z_mean, z_logvar = self.encoder(x).chunk(2, dim=1)
return self.decoder(z_mean + torch.exp(z_logvar) * torch.randn_like(z_mean)), z_mean, z_logvar
''')),
    _variant("discriminator_with_sigmoid", "Discriminator ends with a sigmoid: probabilities, not logits",
             {"test_discriminator"}, cells={"discriminator": SIGMOID_DISCRIMINATOR}),
    _variant("discriminator_loss_labels_swapped", "discriminator_loss labels prior samples 0 and codes 1",
             {"test_discriminator_loss"}, cells={"discriminator_loss": from_reference(
                 NOTEBOOK, "discriminator_loss",
                 ("torch.ones_like(d_prior_logits)", "torch.zeros_like(d_prior_logits)"),
                 ("torch.zeros_like(d_code_logits)", "torch.ones_like(d_code_logits)"))}),
    _variant("discriminator_loss_sigmoid_then_logits", "discriminator_loss applies a sigmoid, then BCE with logits",
             {"test_discriminator_loss"}, cells={"discriminator_loss": '''
def discriminator_loss(d_prior_logits, d_code_logits):
    p, c = torch.sigmoid(d_prior_logits), torch.sigmoid(d_code_logits)
    return (F.binary_cross_entropy_with_logits(p, torch.ones_like(p))
            + F.binary_cross_entropy_with_logits(c, torch.zeros_like(c)))
'''}),
    _variant("discriminator_loss_bce_on_probabilities", "discriminator_loss: F.binary_cross_entropy on sigmoid outputs",
             {"test_discriminator_loss"}, cells={"discriminator_loss": '''
def discriminator_loss(d_prior_logits, d_code_logits):
    p, c = torch.sigmoid(d_prior_logits), torch.sigmoid(d_code_logits)
    return F.binary_cross_entropy(p, torch.ones_like(p)) + F.binary_cross_entropy(c, torch.zeros_like(c))
'''}),
    _variant("generator_loss_saturating", "generator_loss is minus the discriminator's loss on the codes (minimax)",
             {"test_generator_loss"}, cells={"generator_loss": '''
def generator_loss(d_code_logits):
    return -F.binary_cross_entropy_with_logits(d_code_logits, torch.zeros_like(d_code_logits))
'''}),
    _variant("generator_loss_log_of_sigmoid", "generator_loss as -log(sigmoid(logits)): infinite for large logits",
             {"test_generator_loss"}, cells={"generator_loss": '''
def generator_loss(d_code_logits):
    return -torch.log(torch.sigmoid(d_code_logits)).mean()
'''}),
    _variant("missing_ae_checkpoint", "5_conv_aae_ae.pth was not submitted", {"test_conv_ae_trained"},
             files={"5_conv_aae_ae.pth": "missing"}),
    _variant("garbage_vae_checkpoint", "5_conv_aae_vae.pth is not a checkpoint at all", {"test_conv_vae_trained"},
             files={"5_conv_aae_vae.pth": "garbage"}),
    _variant("pickle_payload_aae_checkpoint", "5_conv_aae_aae.pth is a pickle that runs code when unpickled",
             {"test_aae_trained"}, files={"5_conv_aae_aae.pth": "pickle_payload"}),
]

CORRECT = [
    _variant("losses_with_softplus", "both GAN losses written with F.softplus", cells={"discriminator_loss": '''
def discriminator_loss(d_prior_logits, d_code_logits):
    return F.softplus(-d_prior_logits).mean() + F.softplus(d_code_logits).mean()
''', "generator_loss": '''
def generator_loss(d_code_logits):
    return torch.mean(F.softplus(-d_code_logits))
'''}),
    _variant("losses_with_logsigmoid", "the GAN losses via F.logsigmoid and BCEWithLogitsLoss", cells={"discriminator_loss": '''
def discriminator_loss(d_prior_logits, d_code_logits):
    # log(1 - sigmoid(x)) = logsigmoid(-x)
    return -(F.logsigmoid(d_prior_logits).mean() + F.logsigmoid(-d_code_logits).mean())
''', "generator_loss": '''
def generator_loss(d_code_logits):
    criterion = nn.BCEWithLogitsLoss()
    return criterion(d_code_logits, d_code_logits.new_ones(d_code_logits.shape))
'''}),
    _variant("vae_rsample_and_other_discriminator",
             "ConvVAE samples with torch.distributions (same layers); a leaky-ReLU Discriminator of width 64",
             cells={**_vae_forward('''
from torch.distributions import Normal
z_mean, z_logvar = torch.chunk(self.encoder(x), 2, dim=-1)
q = Normal(z_mean, (z_logvar / 2).exp())
return self.decoder(q.rsample()), z_mean, z_logvar
'''), "discriminator": OTHER_DISCRIMINATOR}),
    _variant("other_architectures_retrained",
             "max-pooling encoder, upsampling decoder, a two-head ConvVAE and another discriminator, trained by the student",
             retrain=True, cells={"conv_encoder_decoder": POOLING_ENCODER_UPSAMPLING_DECODER,
                                  "conv_vae": TWO_HEADS_VAE, "discriminator": OTHER_DISCRIMINATOR}),
]

VARIANTS = WRONG + CORRECT
# The demo grades these beside the reference and the blank release.
DEMO = ("encoder_without_convolution", "discriminator_loss_labels_swapped", "generator_loss_saturating")
