"""Variants of notebook 1_ae: wrong implementations each grade cell must catch, and correct rewrites it must accept."""
from __future__ import annotations

from grader.variants import Variant, from_reference

NOTEBOOK = "1_ae"


def _variant(name: str, description: str, fails: set[str] = frozenset(), **kwargs) -> Variant:
    return Variant(name=name, notebook=NOTEBOOK, description=description, fails=frozenset(fails), **kwargs)


def _edit(grade_id: str, *replacements: tuple[str, str]) -> dict[str, str]:
    """The cells of a variant that changes the reference solution of `grade_id` by `replacements`."""
    return {grade_id: from_reference(NOTEBOOK, grade_id, *replacements)}


# The decoder's output sigmoid, left out.
DECODER_SIGMOID = ("nn.Linear(256, 784), nn.Sigmoid(),", "nn.Linear(256, 784),")

BUILDERS_AS_CLASSES = '''
class TanhEncoder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.hidden = nn.Linear(28 * 28, 100)
        self.code = nn.Linear(100, dim)

    def forward(self, x):
        return torch.tanh(self.code(torch.relu(self.hidden(x.reshape(len(x), -1)))))


class SigmoidDecoder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.hidden = nn.Linear(dim, 100)
        self.pixels = nn.Linear(100, 28 * 28)

    def forward(self, z):
        return torch.sigmoid(self.pixels(F.relu(self.hidden(z)))).view(-1, 1, 28, 28)


make_encoder, make_decoder = TanhEncoder, SigmoidDecoder
'''

SPARSITY_WITH_DISTRIBUTIONS = '''
def sparsity_penalty(activations, rho=0.01):
    from torch.distributions import Bernoulli, kl_divergence
    rho_hat = activations.mean(0)
    return kl_divergence(Bernoulli(probs=torch.full_like(rho_hat, rho)), Bernoulli(probs=rho_hat)).sum()
'''

WRONG = [
    _variant("sample_train_from_test", "sample_train draws from the test images", {"test_sample_train"},
             cells={"sample_train": '''
def sample_train(N, return_labels=False):
    index = torch.randperm(len(x_test))[:N]
    return (x_test[index], y_test[index]) if return_labels else x_test[index]
'''}),
    _variant("sample_train_misaligned_labels", "images and labels indexed by two different permutations",
             {"test_sample_train"}, cells={"sample_train": '''
def sample_train(N, return_labels=False):
    images = x_train[torch.randperm(len(x_train))[:N]]
    if return_labels:
        return images, y_train[torch.randperm(len(y_train))[:N]]
    return images
'''}),
    _variant("decoder_without_sigmoid", "the decoder's output is not squashed into [0, 1]",
             {"test_encoder_decoder", "test_reconstruction"},
             cells=_edit("encoder_decoder", DECODER_SIGMOID)),
    _variant("decoder_ignores_codes", "the decoder multiplies its codes by zero, so it can only learn the mean image",
             {"test_autoencoder", "test_reconstruction"},
             cells=_edit("encoder_decoder", ("return self.layers(z)", "return self.layers(0 * z)"))),
    _variant("autoencoder_swapped_outputs", "forward returns (reconstructions, codes)", {"test_autoencoder"},
             cells=_edit("autoencoder", ("return codes, self.decoder(codes)", "return self.decoder(codes), codes"))),
    _variant("compression_linear_code", "the 32-unit code layer has no sigmoid",
             {"test_compression", "test_compression_trained", "test_sparse_trained"},
             cells=_edit("compression", ("nn.Linear(128, 32), nn.Sigmoid())", "nn.Linear(128, 32))"))),
    _variant("sparsity_mean_over_units", "the KL terms are averaged over units instead of summed",
             {"test_sparsity_penalty"},
             cells=_edit("sparsity_penalty", ("(1 - rho_hat))).sum()", "(1 - rho_hat))).mean()"))),
    _variant("sparsity_rho_hat_per_example", "rho_hat is averaged over the units of each example, not over the batch",
             {"test_sparsity_penalty"},
             cells=_edit("sparsity_penalty", ("activations.mean(dim=0)", "activations.mean(dim=1)"))),
    _variant("builders_without_tanh", "make_encoder leaves the code unbounded (no Tanh)", {"test_builders"},
             cells=_edit("builders", ("nn.Linear(100, DIM), nn.Tanh())", "nn.Linear(100, DIM))"))),
    _variant("builders_sigmoid_code", "make_encoder squashes the code with a sigmoid, into (0, 1)", {"test_builders"},
             cells=_edit("builders", ("nn.Linear(100, DIM), nn.Tanh())", "nn.Linear(100, DIM), nn.Sigmoid())"))),
    _variant("builders_hidden_128", "the builders use 128 hidden units instead of 100", {"test_builders"},
             cells=_edit("builders", ("nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, DIM)",
                                      "nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, DIM)"),
                         ("nn.Linear(DIM, 100), nn.ReLU(), nn.Linear(100, 784)",
                          "nn.Linear(DIM, 128), nn.ReLU(), nn.Linear(128, 784)"))),
    _variant("sparse_trained_without_penalty", "1_ae_sparse.pth holds the compression autoencoder, trained without the penalty",
             {"test_sparse_trained"}, files={"1_ae_sparse.pth": "from:1_ae_compression.pth"}),
    _variant("missing_sparse_checkpoint", "1_ae_sparse.pth was not submitted", {"test_sparse_trained"},
             files={"1_ae_sparse.pth": "missing"}),
    _variant("missing_encoder_checkpoint", "1_ae_encoder.pth was not submitted",
             {"test_reconstruction", "test_classifier"}, files={"1_ae_encoder.pth": "missing"}),
    _variant("garbage_compression_checkpoint", "1_ae_compression.pth is not a checkpoint at all",
             {"test_compression_trained"}, files={"1_ae_compression.pth": "garbage"}),
    _variant("pickle_payload_checkpoint", "1_ae_decoder.pth is a pickle that runs code when unpickled",
             {"test_reconstruction", "test_classifier"}, files={"1_ae_decoder.pth": "pickle_payload"}),
    _variant("wrong_architecture_checkpoint", "1_ae_encoder.pth holds the weights of a 2-D encoder",
             {"test_reconstruction", "test_classifier"}, files={"1_ae_encoder.pth": "wrong_architecture"}),
]

CORRECT = [
    _variant("sample_train_with_replacement", "draws indices with torch.randint", cells={"sample_train": '''
def sample_train(N, return_labels=False):
    idx = torch.randint(0, x_train.shape[0], size=(N,))
    images = x_train[idx]
    if not return_labels:
        return images
    return images, y_train[idx]
'''}),
    _variant("functional_sigmoid_decoder", "the decoder applies torch.sigmoid in forward",
             cells=_edit("encoder_decoder", DECODER_SIGMOID, (
                 "return self.layers(z)", "return torch.sigmoid(self.layers[:-1](z)).view(-1, 1, 28, 28)"))),
    _variant("autoencoder_written_out", "forward names every step", cells=_edit("autoencoder", (
        "codes = self.encoder(x)\n        return codes, self.decoder(codes)",
        "z = self.encoder(x)\n        x_hat = self.decoder(z)\n        return (z, x_hat)"))),
    _variant("sparsity_with_distributions", "the KL divergence of two Bernoulli distributions from torch.distributions",
             cells={"sparsity_penalty": SPARSITY_WITH_DISTRIBUTIONS}),
    _variant("builders_as_classes", "the builders are nn.Module classes with torch.tanh and torch.sigmoid in forward",
             cells={"builders": BUILDERS_AS_CLASSES}),
    _variant("warning_but_correct", "correct code that emits a warning inside graded calls",
             cells={"sparsity_penalty": '''
import warnings

def sparsity_penalty(activations, rho=0.01):
    warnings.warn("computing the sparsity penalty")
    p_hat = torch.clamp(activations.mean(dim=0), 1e-7, 1 - 1e-7)
    return torch.sum(rho * (torch.log(torch.tensor(rho)) - torch.log(p_hat))
                     + (1 - rho) * (torch.log(torch.tensor(1 - rho)) - torch.log(1 - p_hat)))
'''}),
    _variant("wider_encoder_retrained", "a different architecture (one wide hidden layer, LeakyReLU), builders as "
             "classes and the penalty from torch.distributions, all trained by the student",
             retrain=True, cells={"builders": BUILDERS_AS_CLASSES, "sparsity_penalty": SPARSITY_WITH_DISTRIBUTIONS,
                                  "encoder_decoder": '''
class Encoder(nn.Module):
    def __init__(self, n_components):
        super().__init__()
        self.hidden = nn.Linear(28 * 28, 512)
        self.code = nn.Linear(512, n_components)

    def forward(self, x):
        return self.code(F.leaky_relu(self.hidden(x.flatten(1)), 0.1))


class Decoder(nn.Module):
    def __init__(self, n_components):
        super().__init__()
        self.hidden = nn.Linear(n_components, 512)
        self.out = nn.Linear(512, 28 * 28)

    def forward(self, z):
        return torch.sigmoid(self.out(F.leaky_relu(self.hidden(z), 0.1))).reshape(len(z), 1, 28, 28)
'''}),
]

VARIANTS = WRONG + CORRECT
# The demo grades these beside the reference and the blank release.
DEMO = ("sample_train_from_test", "decoder_without_sigmoid", "missing_encoder_checkpoint")
