"""Variants of notebook 3_vae: wrong implementations each grade cell must catch, and correct rewrites it must accept.

The hidden checks of the trained models and of the short training run use the grader's own losses
and re-parameterisation, and the wrong variants below are submitted with the reference checkpoints,
so a wrong `sample`, `loss_kl`, `loss_loglik` or `loss_bce` loses exactly the cell that tests it.
"""
from __future__ import annotations

from grader.variants import Variant, from_reference

NOTEBOOK = "3_vae"


def _variant(name: str, description: str, fails: set[str] = frozenset(), **kwargs) -> Variant:
    return Variant(name=name, notebook=NOTEBOOK, description=description, fails=frozenset(fails), **kwargs)


def _edit(grade_id: str, *replacements: tuple[str, str]) -> dict[str, str]:
    """The cells of a variant that changes the reference solution of `grade_id` by `replacements`."""
    return {grade_id: from_reference(NOTEBOOK, grade_id, *replacements)}


def _indent(code: str) -> str:
    return "\n".join("        " + line for line in code.strip().splitlines())


def _encoder(sample_body: str) -> dict[str, str]:
    """The reference Encoder (its layers, so the reference checkpoint loads) with another sample method."""
    return _edit("encoder", ("eps = torch.randn_like(z_mean)\n        return z_mean + torch.exp(0.5 * z_logvar) * eps",
                             _indent(sample_body).lstrip()))


def _decoder(logvar: str) -> dict[str, str]:
    """The reference Decoder with forward rewritten around `logvar`, an expression of the raw head output `raw`."""
    return _edit("decoder", ("y_mean = self.mean_head(hidden).view(-1, 1, 28, 28)\n"
                             "        y_logvar = -6.0 + F.softplus(self.logvar_head(hidden) + 6.0)\n"
                             "        return y_mean, y_logvar.view(-1, 1, 28, 28)",
                             "raw = self.logvar_head(hidden)\n"
                             "        return self.mean_head(hidden).reshape(len(z), 1, 28, 28), "
                             f"({logvar}).reshape(len(z), 1, 28, 28)"))


WRONG = [
    _variant("kl_wrong_sign", "KL with the sign flipped", {"test_loss_kl"}, cells={"loss_kl": '''
def loss_kl(z_mean, z_logvar):
    return (-0.5 * (torch.exp(z_logvar) + z_mean ** 2 - 1 - z_logvar).sum(dim=1)).mean()
'''}),
    _variant("kl_missing_half", "KL without the factor 1/2", {"test_loss_kl"}, cells={"loss_kl": '''
def loss_kl(z_mean, z_logvar):
    return torch.sum(z_logvar.exp() + z_mean.pow(2) - 1 - z_logvar, dim=1).mean()
'''}),
    _variant("kl_mean_over_dims", "KL averaged over the latent dimensions instead of summed", {"test_loss_kl"},
             cells={"loss_kl": '''
def loss_kl(z_mean, z_logvar):
    return 0.5 * torch.mean(torch.exp(z_logvar) + z_mean ** 2 - 1 - z_logvar)
'''}),
    _variant("sample_logvar_as_std", "sample scales the noise by z_logvar itself", {"test_sample"},
             cells=_encoder("return z_mean + z_logvar * torch.randn_like(z_mean)")),
    _variant("sample_returns_mean", "sample returns z_mean without noise", {"test_sample"},
             cells=_encoder("return z_mean")),
    _variant("sample_variance_as_std", "sample scales the noise by exp(z_logvar), the variance", {"test_sample"},
             cells=_encoder("return z_mean + torch.exp(z_logvar) * torch.randn_like(z_mean)")),
    _variant("loglik_without_logvar_term", "the 0.5 * y_logvar term of the Gaussian NLL is missing",
             {"test_loss_loglik"}, cells={"loss_loglik": '''
def loss_loglik(y_mean, y_logvar, x):
    return (0.5 * (x - y_mean) ** 2 / torch.exp(y_logvar)).sum(dim=(1, 2, 3)).mean()
'''}),
    _variant("loglik_mean_over_pixels", "the Gaussian NLL averaged over pixels instead of summed",
             {"test_loss_loglik"}, cells={"loss_loglik": '''
def loss_loglik(y_mean, y_logvar, x):
    return torch.mean(0.5 * (y_logvar + (x - y_mean) ** 2 / torch.exp(y_logvar)))
'''}),
    _variant("bce_probabilities_as_logits", "loss_bce applies binary_cross_entropy_with_logits to probabilities",
             {"test_loss_bce"}, cells={"loss_bce": '''
def loss_bce(x_rec, x):
    return F.binary_cross_entropy_with_logits(x_rec, x)
'''}),
    _variant("decoder_without_floor", "the decoder's log-variance is the raw output of a linear layer",
             {"test_decoder", "test_vae_learns", "test_vae_trained"},
             cells=_decoder("raw")),
    _variant("bernoulli_wrong_widths", "BernoulliVAE with 256 instead of 128 hidden units",
             {"test_bernoulli_vae", "test_bernoulli_trained"},
             cells=_edit("bernoulli_vae", ("nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64)",
                                           "nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64)"),
                         ("nn.Linear(64, 128), nn.ReLU(),\n            nn.Linear(128, 784)",
                          "nn.Linear(64, 256), nn.ReLU(),\n            nn.Linear(256, 784)"))),
    _variant("bernoulli_std_is_the_variance", "BernoulliVAE samples with exp(z_logvar) as the standard deviation",
             {"test_bernoulli_vae"},
             cells=_edit("bernoulli_vae", ("torch.exp(0.5 * z_logvar)", "torch.exp(z_logvar)"))),
    _variant("bernoulli_uniform_noise", "BernoulliVAE draws eps from the uniform torch.rand_like",
             {"test_bernoulli_vae"},
             cells=_edit("bernoulli_vae", ("torch.randn_like(z_mean)", "torch.rand_like(z_mean)"))),
    _variant("missing_encoder_checkpoint", "3_vae_encoder.pth was not submitted",
             {"test_vae_trained", "test_vae_classifier"}, files={"3_vae_encoder.pth": "missing"}),
    _variant("pickle_payload_decoder_checkpoint", "3_vae_decoder.pth is a pickle that runs code when unpickled",
             {"test_vae_trained"}, files={"3_vae_decoder.pth": "pickle_payload"}),
    _variant("garbage_bernoulli_checkpoint", "3_vae_bernoulli.pth is not a checkpoint at all",
             {"test_bernoulli_trained"}, files={"3_vae_bernoulli.pth": "garbage"}),
]

CORRECT = [
    _variant("sample_with_distributions", "sample via torch.distributions.Normal(...).rsample()",
             cells=_encoder('''
from torch.distributions import Normal
return Normal(z_mean, torch.exp(z_logvar / 2)).rsample()
''')),
    _variant("sample_with_sqrt", "sample written with std = sqrt(exp(z_logvar)) and torch.randn",
             cells=_encoder('''
std = torch.sqrt(torch.exp(z_logvar))
noise = torch.randn(z_mean.shape, device=z_mean.device)
return noise * std + z_mean
''')),
    _variant("kl_with_distributions", "loss_kl via torch.distributions.kl_divergence", cells={"loss_kl": '''
def loss_kl(z_mean, z_logvar):
    from torch.distributions import Normal, kl_divergence
    q = Normal(z_mean, torch.exp(0.5 * z_logvar))
    p = Normal(torch.zeros_like(z_mean), torch.ones_like(z_mean))
    return kl_divergence(q, p).sum(-1).mean()
'''}),
    _variant("kl_written_with_std", "loss_kl written with the standard deviation, the textbook -1/2 form",
             cells={"loss_kl": '''
def loss_kl(z_mean, z_logvar):
    std = torch.exp(z_logvar / 2)
    batch_size = z_mean.shape[0]
    return -0.5 * torch.sum(1 + torch.log(std ** 2) - z_mean ** 2 - std ** 2) / batch_size
'''}),
    _variant("loglik_with_distributions", "loss_loglik via Normal(...).log_prob, which includes the 2 pi constant",
             cells={"loss_loglik": '''
def loss_loglik(y_mean, y_logvar, x):
    from torch.distributions import Normal
    log_p = Normal(y_mean, torch.exp(0.5 * y_logvar)).log_prob(x)
    return -log_p.reshape(len(x), -1).sum(1).mean()
'''}),
    _variant("loglik_gaussian_nll_loss", "loss_loglik via F.gaussian_nll_loss summed, divided by the batch size",
             cells={"loss_loglik": '''
def loss_loglik(y_mean, y_logvar, x):
    return F.gaussian_nll_loss(y_mean, x, torch.exp(y_logvar), reduction="sum") / x.shape[0]
'''}),
    _variant("loglik_explicit_constant", "loss_loglik written out with the 0.5 log(2 pi) constant",
             cells={"loss_loglik": '''
def loss_loglik(y_mean, y_logvar, x):
    var = y_logvar.exp()
    nll = 0.5 * math.log(2 * math.pi) + 0.5 * y_logvar + (x - y_mean) ** 2 / (2 * var)
    return nll.view(x.size(0), -1).sum(dim=1).mean()
'''}),
    _variant("bce_explicit_formula", "loss_bce written out with clamped logarithms", cells={"loss_bce": '''
def loss_bce(x_rec, x):
    p = x_rec.clamp(1e-7, 1 - 1e-7)
    return -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).mean()
'''}),
    _variant("bce_with_distributions", "loss_bce via Bernoulli(probs=...).log_prob", cells={"loss_bce": '''
def loss_bce(x_rec, x):
    from torch.distributions import Bernoulli
    return -Bernoulli(probs=x_rec, validate_args=False).log_prob(x).mean()
'''}),
    _variant("decoder_floor_with_logaddexp", "the floor written as logaddexp(h, -6), the same function as -6 + softplus(h + 6)",
             cells=_decoder("torch.logaddexp(raw, torch.full_like(raw, -6.0))")),
    _variant("bernoulli_forward_with_distributions", "BernoulliVAE.forward samples with Normal(...).rsample()",
             cells=_edit("bernoulli_vae", ("z = z_mean + torch.exp(0.5 * z_logvar) * torch.randn_like(z_mean)",
                                           "from torch.distributions import Normal\n"
                                           "        z = Normal(z_mean, (0.5 * z_logvar).exp()).rsample()"))),
    _variant("other_architectures_retrained", "another Encoder, Decoder and BernoulliVAE, trained by the student",
             retrain=True, cells={"encoder": '''
class Encoder(nn.Module):
    """Squared pixels in, one hidden layer, one head split into means and log-variances."""

    def __init__(self, n_components):
        super().__init__()
        self.n_components = n_components
        self.hidden = nn.Linear(28 * 28, 600)
        self.head = nn.Linear(600, 2 * n_components)

    def forward(self, x):
        h = F.relu(self.hidden((x ** 2).reshape(len(x), -1)))
        z_mean, z_logvar = self.head(h).chunk(2, dim=1)
        return z_mean, z_logvar

    def sample(self, z_mean, z_logvar):
        return torch.distributions.Normal(z_mean, torch.exp(0.5 * z_logvar)).rsample()
''', "decoder": '''
class Decoder(nn.Module):
    """One hidden layer, one head split into means and log-variances, floored with logaddexp."""

    def __init__(self, n_components):
        super().__init__()
        self.hidden = nn.Linear(n_components, 600)
        self.head = nn.Linear(600, 2 * 784)

    def forward(self, z):
        y_mean, raw = self.head(F.relu(self.hidden(z))).chunk(2, dim=1)
        y_logvar = torch.logaddexp(raw, torch.full_like(raw, -6.0))
        return y_mean.reshape(-1, 1, 28, 28), y_logvar.reshape(-1, 1, 28, 28)
''', "bernoulli_vae": '''
class BernoulliVAE(nn.Module):
    """One 20-unit head for means and log-variances; layers listed one by one."""

    def __init__(self, n_components=10):
        super().__init__()
        self.e1, self.e2 = nn.Linear(784, 128), nn.Linear(128, 64)
        self.head = nn.Linear(64, 2 * n_components)
        self.d1, self.d2, self.d3 = nn.Linear(n_components, 64), nn.Linear(64, 128), nn.Linear(128, 784)

    def encode(self, x):
        h = F.relu(self.e2(F.relu(self.e1(x.flatten(1)))))
        return torch.chunk(self.head(h), 2, dim=-1)

    def decode(self, z):
        return torch.sigmoid(self.d3(F.relu(self.d2(F.relu(self.d1(z)))))).view(-1, 1, 28, 28)

    def forward(self, x):
        z_mean, z_logvar = self.encode(x)
        eps = torch.randn_like(z_logvar)
        return self.decode(z_mean + eps * torch.exp(z_logvar * 0.5)), z_mean, z_logvar
'''}),
]

VARIANTS = WRONG + CORRECT
# The demo grades these beside the reference and the blank release.
DEMO = ("kl_wrong_sign", "sample_variance_as_std", "missing_encoder_checkpoint")
