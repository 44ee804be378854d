# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Convolutional and adversarial autoencoders
#
# The autoencoders of notebooks 1 and 3 flatten every image into a vector of 784 numbers and use
# fully connected layers. They do not know that neighbouring pixels belong together: shifting a
# digit by one pixel gives them a completely different input. A **convolutional** network slides the
# same small filters over the whole image instead, so it needs far fewer weights and treats a stroke
# the same wherever it is.
#
# In this notebook you will
# 1. build a convolutional encoder and decoder, train them as an autoencoder with 10-D codes, and
#    compare them with the fully connected autoencoder of notebook 1;
# 2. look at the 2-D codes of a convolutional autoencoder and at what happens when you add noise to
#    codes before decoding them;
# 3. build a convolutional variational autoencoder (VAE) and generate digits with it;
# 4. build an **adversarial autoencoder** (AAE): instead of the KL term of a VAE, a discriminator
#    network pushes the codes towards a chosen prior distribution.
#
# **How grading works.** Cells marked as tests check your code. Some checks are visible here; more
# are hidden and run when your notebook is graded. The hidden tests call your classes and functions
# on small inputs, train your `ConvEncoder`, `ConvDecoder` and `Discriminator` from scratch for a few
# hundred steps (seconds on a CPU), and load the models you saved: `5_conv_aae_ae.pth`,
# `5_conv_aae_vae.pth` and `5_conv_aae_aae.pth` (the notebook also saves `5_conv_aae_ae2d.pth`,
# which is not graded). Grading never trains them for you, so submit those files with the notebook.
#
# **`skip_training`.** While you work, keep `skip_training = False` so the training cells train and
# save your models. Once they are saved you can set it to `True`: the notebook then loads the saved
# models instead of training again. During grading it is always `True`.
#
# **Times.** The training times quoted below were measured with one thread of our test machine's
# processor ({{TIME.machine}}), for the reference solution and for another reasonable architecture,
# and scaled to all 60,000 training images. Your laptop may take two or three times as long; a GPU
# takes a fraction of it.

# %%
skip_training = False

# %% kind="guard" grade_id="skip_training_guard" points=0
# This cell is locked. While your notebook is graded it sets skip_training = True, so the training
# cells below load the models you saved instead of training them.
### BEGIN HIDDEN TESTS
skip_training = True
### END HIDDEN TESTS

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from aelib.checkpoints import CheckpointError, load_model, save_model
from aelib.data import load_mnist, minibatches
from aelib.evaluation import encode, mse_per_pixel
from aelib.plotting import scatter_codes, show_images
from aelib.training import pick_device, progress

device = pick_device(skip_training)
print("Using", device)

# %% [markdown]
# ## Data
#
# `load_mnist(split)` returns images `(N, 1, 28, 28)` with values in $[0, 1]$ and their labels.

# %%
x_train, y_train = load_mnist("train")
x_test, y_test = load_mnist("test")
print("training images:", tuple(x_train.shape), " test images:", tuple(x_test.shape))
show_images(x_test[:10], title="MNIST test images")

# %% [markdown]
# ## 1. A convolutional autoencoder
#
# ### 1.1 Encoder and decoder
#
# A convolution `nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)` turns a stack
# of `in_channels` images into `out_channels` images ("feature maps"). With `kernel_size=3`,
# `padding=1` and `stride=2` it halves the height and the width: $28 \to 14 \to 7$. A transposed
# convolution `nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)`
# doubles them again: $7 \to 14 \to 28$. (Another way up: `nn.Upsample(scale_factor=2)` followed by
# an `nn.Conv2d` with `padding=1`.)
#
# Write two classes:
#
# * `ConvEncoder(n_components)`: `forward(x)` maps images `(B, 1, 28, 28)` to codes
#   `(B, n_components)`. It must start with convolutions applied to the images themselves: at least
#   two `nn.Conv2d` layers, the first one being the first layer with weights that sees the input.
#   Then flatten and finish with a linear layer to `n_components`.
# * `ConvDecoder(n_components)`: `forward(z)` maps codes `(B, n_components)` back to images
#   `(B, 1, 28, 28)` with values in $[0, 1]$: a linear layer to a small stack of feature maps (for
#   example 32 maps of $7 \times 7$, `nn.Unflatten`), then transposed convolutions (or upsampling
#   and convolutions), and a sigmoid at the end.
#
# A small architecture works well here and trains fast on a CPU:
#
# | encoder | decoder |
# | --- | --- |
# | `Conv2d(1, 16, 3, stride=2, padding=1)`, ReLU: $16 \times 14 \times 14$ | `Linear(n_components, 32 * 7 * 7)`, ReLU, unflatten to $32 \times 7 \times 7$ |
# | `Conv2d(16, 32, 3, stride=2, padding=1)`, ReLU: $32 \times 7 \times 7$ | `ConvTranspose2d(32, 16, 4, stride=2, padding=1)`, ReLU: $16 \times 14 \times 14$ |
# | flatten, `Linear(32 * 7 * 7, n_components)` | `ConvTranspose2d(16, 1, 4, stride=2, padding=1)`, sigmoid: $1 \times 28 \times 28$ |
#
# With `n_components=10` these two have 46,203 parameters together, against 436,890 for the fully
# connected autoencoder 784-256-64-10 of notebook 1's reference solution (yours may differ).

# %% kind="solution" grade_id="conv_encoder_decoder"
class ConvEncoder(nn.Module):
    """Convolutional encoder: strided convolutions on the image, then a linear layer to the code.

    Args:
        n_components: length of the code produced for every image, an int.
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, n_components),
        )
        ### END SOLUTION

    def forward(self, x):
        """Codes (B, n_components) of images x (B, 1, 28, 28).

        Args:
            x: float tensor (B, 1, 28, 28) of images with pixel values in [0, 1].

        Returns:
            A float tensor (B, n_components): one unbounded real-valued code per image.
        """
        ### BEGIN SOLUTION
        return self.layers(x)
        ### END SOLUTION


class ConvDecoder(nn.Module):
    """Convolutional decoder: a linear layer to small feature maps, then upsampling to 28 x 28.

    Args:
        n_components: length of the codes it accepts, an int.
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.Sequential(
            nn.Linear(n_components, 32 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1), nn.Sigmoid(),
        )
        ### END SOLUTION

    def forward(self, z):
        """Images (B, 1, 28, 28) with values in [0, 1] decoded from codes z (B, n_components).

        Args:
            z: float tensor (B, n_components) of codes.

        Returns:
            A float tensor (B, 1, 28, 28) of images with pixel values in [0, 1] (sigmoid outputs).
        """
        ### BEGIN SOLUTION
        return self.layers(z)
        ### END SOLUTION


# %% kind="tests" grade_id="test_conv_encoder_decoder" points=2
some_codes = ConvEncoder(10)(torch.rand(4, 1, 28, 28))
assert tuple(some_codes.shape) == (4, 10), f"ConvEncoder(10) should return codes of shape (4, 10), got {tuple(some_codes.shape)}"
some_images = ConvDecoder(10)(torch.randn(4, 10))
assert tuple(some_images.shape) == (4, 1, 28, 28), f"ConvDecoder(10) should return (4, 1, 28, 28), got {tuple(some_images.shape)}"
assert some_images.min() >= 0 and some_images.max() <= 1, "ConvDecoder should return values in [0, 1]: end with a sigmoid"
n_convolutions = sum(isinstance(m, nn.Conv2d) for m in ConvEncoder(10).modules())
assert n_convolutions >= 2, f"ConvEncoder should use at least two nn.Conv2d layers, found {n_convolutions}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_conv_encoder_decoder", grader.collect.conv_aae.collect_conv_encoder_decoder, ConvEncoder, ConvDecoder)
### END HIDDEN TESTS

# %% [markdown]
# The hidden tests of your encoder and decoder also train a fresh `ConvEncoder(10)` and
# `ConvDecoder(10)` for 400 Adam steps (learning rate $10^{-3}$, batches of 64, the MSE loss) and
# check that the test MSE falls well below that of the mean image (0.067): below
# {{CONV_AAE.brief_training_mse.threshold}} (a reference solution: about {{CONV_AAE.brief_training_mse.reference:.3f}}).

# %% kind="tests" grade_id="test_conv_ae_learns" points=1
# Hidden tests train a fresh ConvEncoder(10) and ConvDecoder(10) for 400 steps and check the test MSE.
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_conv_ae_learns", grader.collect.conv_aae.collect_conv_ae_learns, ConvEncoder, ConvDecoder)
### END HIDDEN TESTS
print("See the hidden tests.")

# %% [markdown]
# ### 1.2 Training with a progress bar
#
# An autoencoder here is simply `nn.Sequential(ConvEncoder(n), ConvDecoder(n))`: calling it
# reconstructs images, `model[0]` is the encoder and `model[1]` the decoder.
#
# Write `train_autoencoder(model, n_epochs, lr=1e-3, batch_size=64)`: mini-batches of `x_train`
# (`minibatches(x_train, batch_size=batch_size)`), the loss `F.mse_loss(model(batch), batch)`, Adam
# with learning rate `lr`, on `device`. Show a progress bar over the epochs that displays the
# training loss of the epoch (the mean over its batches) and the test loss (the MSE on `x_test`
# after the epoch): `bar = progress(range(n_epochs))` gives the bar and
# `bar.set_postfix(train=..., test=...)` writes the two numbers next to it. Return the list of
# `(train_loss, test_loss)` pairs, one per epoch.

# %% kind="solution" grade_id="train_autoencoder"
def test_loss(model, images=None):
    """Per-pixel MSE of model's reconstructions of the test images (or of `images`).

    Args:
        model: a module on `device` mapping images (B, 1, 28, 28) to reconstructions of the same shape,
            such as nn.Sequential(ConvEncoder(n), ConvDecoder(n)); it is put in evaluation mode.
        images: None for x_test, or a float tensor (N, 1, 28, 28) of images in [0, 1].

    Returns:
        A Python float: the squared reconstruction error averaged over all pixels of all the images.
    """
    images = x_test if images is None else images
    model.eval()
    with torch.no_grad():
        reconstructions = torch.cat([model(images[i:i + 1000].to(device)).cpu()
                                     for i in range(0, len(images), 1000)])
    return mse_per_pixel(reconstructions, images)


def train_autoencoder(model, n_epochs, lr=1e-3, batch_size=64):
    """Train model = nn.Sequential(encoder, decoder) on x_train with the MSE, showing a progress bar.

    Args:
        model: a module mapping images (B, 1, 28, 28) to reconstructions of the same shape, e.g.
            nn.Sequential(ConvEncoder(n), ConvDecoder(n)); it is moved to `device` and trained in place.
        n_epochs: number of passes over x_train, an int.
        lr: learning rate of the Adam optimiser, a float.
        batch_size: number of images per mini-batch, an int.

    Returns:
        A list of n_epochs pairs (train_loss, test_loss) of floats: the mean training MSE over the
        batches of the epoch, and the per-pixel MSE on x_test measured after the epoch.
    """
    ### BEGIN SOLUTION
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images = x_train.to(device)
    history = []
    bar = progress(range(n_epochs), desc="epochs")
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for batch in minibatches(images, batch_size=batch_size):
            loss = F.mse_loss(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append((total / count, test_loss(model)))
        bar.set_postfix(train=f"{history[-1][0]:.4f}", test=f"{history[-1][1]:.4f}")
    model.eval()
    return history
    ### END SOLUTION


# %% [markdown]
# ### 1.3 Train a convolutional autoencoder with 10-D codes
#
# The next cell trains `nn.Sequential(ConvEncoder(10), ConvDecoder(10))` for 15 epochs
# ({{TIME.conv_ae}} on one CPU thread) and saves it to `5_conv_aae_ae.pth`.
#
# **What good looks like:** a test MSE per pixel below {{CONV_AAE.ae10_mse.threshold}}, better than the reference solution of
# notebook 1's fully connected 10-D autoencoder ({{AE.ae10_mse.reference}}, trained there for 10 epochs on the same
# images). A reference solution reaches about {{CONV_AAE.ae10_mse.reference:.3f}}. PCA with 10 components gives 0.036, the mean image 0.067.

# %% timed="conv_ae"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
conv_ae = nn.Sequential(ConvEncoder(10), ConvDecoder(10))
if not skip_training:
    history = train_autoencoder(conv_ae, n_epochs=15)
    print(f"last epoch: train loss {history[-1][0]:.4f}, test loss {history[-1][1]:.4f}")
    save_model(conv_ae, "5_conv_aae_ae.pth")
else:
    load_model(conv_ae, "5_conv_aae_ae.pth", device)
conv_ae.to(device).eval()
conv_mse = test_loss(conv_ae)
n_conv_parameters = sum(p.numel() for p in conv_ae.parameters())
print(f"convolutional autoencoder: test MSE {conv_mse:.4f} with {n_conv_parameters:,} parameters")
print("fully connected autoencoder of notebook 1 (reference solution): test MSE {{AE.ae10_mse.reference}} with 436,890 parameters")
with torch.no_grad():
    reconstructions = conv_ae(x_test[:10].to(device)).cpu()
show_images(torch.cat([x_test[:10], reconstructions]), title="test digits (top) and reconstructions (bottom)")

# %% kind="tests" grade_id="test_conv_ae_trained" points=2
# Hidden tests load 5_conv_aae_ae.pth into nn.Sequential(ConvEncoder(10), ConvDecoder(10)) and check
# the per-pixel MSE on held-out images (below {{CONV_AAE.ae10_mse.threshold}}).
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_conv_ae_trained", grader.collect.conv_aae.collect_conv_ae_trained, ConvEncoder, ConvDecoder)
### END HIDDEN TESTS
assert conv_mse < 0.067, f"Your autoencoder (MSE {conv_mse:.4f}) does no better than the mean image: train it"
print("Visible tests passed.")

# %% [markdown]
# **Question.** The convolutional autoencoder has about a tenth of the parameters of the fully
# connected one and reaches a lower error. Where does the saving come from (count the weights of
# the first layer of each)? What does a convolution assume about images that a fully connected layer
# has to learn? What is the price: compare how long one epoch takes for each on your machine.
#
# *Your answer here.*

# %% [markdown]
# ## 2. A 2-D convolutional code
#
# With only two code dimensions the codes can be drawn directly. The next cell trains
# `nn.Sequential(ConvEncoder(2), ConvDecoder(2))` for 10 epochs with your `train_autoencoder`, saves
# it to `5_conv_aae_ae2d.pth` (not graded; {{TIME.conv_ae2d}} on one CPU thread), and scatters the codes of the test digits coloured by
# their label.

# %% timed="conv_ae2d"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
conv_ae2 = nn.Sequential(ConvEncoder(2), ConvDecoder(2))
have_ae2d = True
if not skip_training:
    history = train_autoencoder(conv_ae2, n_epochs=10)
    save_model(conv_ae2, "5_conv_aae_ae2d.pth")
else:
    try:
        load_model(conv_ae2, "5_conv_aae_ae2d.pth", device)
    except CheckpointError as error:
        have_ae2d = False
        print(f"The 2-D code space is skipped (it is not graded): {error}")
if have_ae2d:
    conv_ae2.to(device).eval()
    codes_2d = encode(conv_ae2[0], x_test)
    print(f"2-D convolutional autoencoder: test MSE {test_loss(conv_ae2):.4f} "
          "(the 2-D MLP autoencoder of notebook 1: 0.053)")
    scatter_codes(codes_2d, y_test, title="2-D codes of the test digits")

# %% [markdown]
# **Noise on the codes.** Take the codes of a few test digits, add Gaussian noise of growing size,
# and decode. The noise is measured in units of the spread of the codes (their standard deviation
# over the test set), so 1.0 means a step as large as the spread of the whole map.

# %%
def decode_noisy_codes(model, images, noise_levels, seed=0):
    """Decode the codes of `images` plus Gaussian noise of each size in noise_levels (rows: images)."""
    generator = torch.Generator().manual_seed(seed)
    codes = encode(model[0], images)
    spread = codes_2d.std(dim=0)
    rows = []
    with torch.no_grad():
        for code in codes:
            noisy = code + spread * torch.tensor(noise_levels).unsqueeze(1) * torch.randn(
                len(noise_levels), len(code), generator=generator)
            rows.append(model[1](noisy.to(device)).cpu())
    return torch.cat(rows)


noise_levels = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
if have_ae2d:
    show_images(decode_noisy_codes(conv_ae2, x_test[:6], noise_levels), ncol=len(noise_levels),
                title="noise of size " + ", ".join(map(str, noise_levels)) + " (left to right)")

# %% [markdown]
# **Question.** How much noise does a code take before the decoded digit changes? Does that agree
# with the map (are some digits in narrow arms, others in wide regions)? Why can a small step in code
# space turn one digit into another here, while the same step changes little in the 10-D model?
#
# *Your answer here.*

# %% [markdown]
# ## 3. A convolutional VAE
#
# A VAE (notebook 3) encodes an image into a Gaussian distribution over codes,
# $q(z \mid x) = \mathcal N\big(\mu(x), \operatorname{diag} e^{\,\texttt{z\_logvar}(x)}\big)$, draws a
# code from it with the re-parameterisation trick, $z = \mu + e^{\frac12 \texttt{z\_logvar}} \odot
# \varepsilon$ with $\varepsilon \sim \mathcal N(0, I)$, and decodes it.
#
# Write `ConvVAE(n_components)` from your convolutional encoder and decoder:
#
# * `forward(x)` takes images `(B, 1, 28, 28)` and returns the tuple `(x_rec, z_mean, z_logvar)`:
#   the decoded pixel probabilities `(B, 1, 28, 28)` in $[0, 1]$ of one sampled code per image
#   (a new sample on every call, in training and in evaluation mode), and the means and
#   log-variances `(B, n_components)` of $q(z \mid x)$.
# * Keep the decoder as the attribute `self.decoder` (a `ConvDecoder(n_components)`): the notebook
#   generates digits with `vae.decoder(z)`.
#
# The encoder needs $2 \times$ `n_components` outputs. Two easy ways: a `ConvEncoder(2 * n_components)`
# whose output you split into means and log-variances (`torch.chunk`), or a convolutional body with
# two linear heads.

# %% kind="solution" grade_id="conv_vae"
class ConvVAE(nn.Module):
    """Variational autoencoder built from a convolutional encoder and a ConvDecoder.

    Args:
        n_components: dimension of the code z, an int.

    Attributes:
        decoder: a ConvDecoder(n_components) that maps codes (B, n_components) to pixel probabilities
            (B, 1, 28, 28); the notebook uses it on its own to generate digits.
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = ConvEncoder(2 * n_components)
        self.decoder = ConvDecoder(n_components)
        ### END SOLUTION

    def forward(self, x):
        """Encode x, draw one code per image with the re-parameterisation trick and decode it.

        Args:
            x: float tensor (B, 1, 28, 28) of images with pixel values in [0, 1].

        Returns:
            A tuple (x_rec, z_mean, z_logvar): x_rec is a float tensor (B, 1, 28, 28) of pixel
            probabilities in [0, 1] decoded from codes sampled anew on every call (in evaluation mode
            too); z_mean and z_logvar are float tensors (B, n_components), the means and
            log-variances of q(z | x).
        """
        ### BEGIN SOLUTION
        z_mean, z_logvar = self.encoder(x).chunk(2, dim=1)
        z = z_mean + torch.exp(0.5 * z_logvar) * torch.randn_like(z_mean)
        return self.decoder(z), z_mean, z_logvar
        ### END SOLUTION


# %% kind="tests" grade_id="test_conv_vae" points=2
vae_output = ConvVAE(10)(torch.rand(3, 1, 28, 28))
assert isinstance(vae_output, tuple) and len(vae_output) == 3, "forward should return (x_rec, z_mean, z_logvar)"
assert tuple(vae_output[0].shape) == (3, 1, 28, 28), f"x_rec should have shape (3, 1, 28, 28), got {tuple(vae_output[0].shape)}"
assert tuple(vae_output[1].shape) == tuple(vae_output[2].shape) == (3, 10), "z_mean and z_logvar should have shape (3, 10)"
assert isinstance(ConvVAE(10).decoder(torch.randn(2, 10)), torch.Tensor), "ConvVAE should keep its decoder as self.decoder"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_conv_vae", grader.collect.conv_aae.collect_conv_vae, ConvVAE)
### END HIDDEN TESTS

# %% [markdown]
# ### 3.1 Training
#
# The loss is the negative ELBO per image: the binary cross-entropy **summed over the 784 pixels**
# plus the KL divergence
# $\frac12 \sum_j \big(e^{\texttt{z\_logvar}_j} + \texttt{z\_mean}_j^2 - 1 - \texttt{z\_logvar}_j\big)$,
# both averaged over the images of the batch. (In notebook 3 the BCE was averaged over pixels and
# the KL weighted by $10^{-3}$; the full ELBO here weighs the KL term much more, which keeps the codes
# close to the prior.)
#
# Write `vae_loss(x_rec, x, z_mean, z_logvar)` returning that scalar, and
# `train_vae(model, n_epochs, lr=1e-3, batch_size=64)`, a training loop like `train_autoencoder` with
# this loss, showing the mean training loss and the loss on `x_test[:1000]` in its progress bar after
# every epoch (the test loss computed without gradients, in `eval()` mode, inside
# `with torch.random.fork_rng():` so that sampling its codes leaves the training draws as they were);
# return the mean training loss per epoch. The next cell trains a `ConvVAE(10)` for 15 epochs ({{TIME.conv_vae}} on one CPU thread) and saves it to
# `5_conv_aae_vae.pth`.
#
# **What good looks like:** a test negative ELBO below {{CONV_AAE.vae_test_elbo.threshold:.0f}} nats per image (the hidden test computes
# it with one sampled code per image). A reference solution reaches about {{CONV_AAE.vae_test_elbo.reference:.0f}}; the average image
# alone costs about 215 nats of BCE.

# %% kind="solution" grade_id="train_vae"
def vae_loss(x_rec, x, z_mean, z_logvar):
    """Negative ELBO: BCE summed over pixels plus KL(q || N(0, I)), both averaged over the batch.

    Args:
        x_rec: float tensor (B, 1, 28, 28) of decoded pixel probabilities in [0, 1], not logits.
        x: float tensor (B, 1, 28, 28) of target images in [0, 1].
        z_mean: float tensor (B, n_components) of means of q(z | x).
        z_logvar: float tensor (B, n_components) of log-variances of q(z | x).

    Returns:
        A differentiable scalar tensor in nats per image: the binary cross-entropy summed over the 784
        pixels plus the KL divergence summed over the code dimensions, averaged over the B images.
    """
    ### BEGIN SOLUTION
    bce = F.binary_cross_entropy(x_rec, x, reduction="sum") / len(x)
    kl = 0.5 * (z_logvar.exp() + z_mean ** 2 - 1 - z_logvar).sum(dim=1).mean()
    return bce + kl
    ### END SOLUTION


def train_vae(model, n_epochs, lr=1e-3, batch_size=64):
    """Train a ConvVAE on x_train with vae_loss; return the mean training loss per epoch.

    Args:
        model: a ConvVAE; it is moved to `device` and trained in place.
        n_epochs: number of passes over x_train, an int.
        lr: learning rate of the Adam optimiser, a float.
        batch_size: number of images per mini-batch, an int.

    Returns:
        A list of n_epochs floats: the training negative ELBO per image, averaged over each epoch.
    """
    ### BEGIN SOLUTION
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images = x_train.to(device)
    history = []
    bar = progress(range(n_epochs), desc="epochs")
    for epoch in bar:
        total, count = 0.0, 0
        for batch in minibatches(images, batch_size=batch_size):
            x_rec, z_mean, z_logvar = model(batch)
            loss = vae_loss(x_rec, batch, z_mean, z_logvar)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append(total / count)
        model.eval()
        with torch.no_grad(), torch.random.fork_rng():  # sampling test codes leaves the training draws as they were
            test_images = x_test[:1000].to(device)
            x_rec, z_mean, z_logvar = model(test_images)
            test = vae_loss(x_rec, test_images, z_mean, z_logvar).item()
        model.train()
        bar.set_postfix(train=f"{history[-1]:.1f}", test=f"{test:.1f}")
    model.eval()
    return history
    ### END SOLUTION


# %% timed="conv_vae"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
vae = ConvVAE(10)
if not skip_training:
    history = train_vae(vae, n_epochs=15)
    print(f"last training loss: {history[-1]:.1f}")
    save_model(vae, "5_conv_aae_vae.pth")
else:
    load_model(vae, "5_conv_aae_vae.pth", device)
vae.to(device).eval()
torch.manual_seed(1)
with torch.no_grad():
    batch_losses = []
    for start in range(0, len(x_test), 1000):
        batch = x_test[start:start + 1000].to(device)
        x_rec, z_mean, z_logvar = vae(batch)
        batch_losses.append(float(vae_loss(x_rec, batch, z_mean, z_logvar)) * len(batch))
vae_test_loss = sum(batch_losses) / len(x_test)
print(f"test negative ELBO: {vae_test_loss:.1f} nats per image")

# %% kind="tests" grade_id="test_conv_vae_trained" points=2
# Hidden tests load 5_conv_aae_vae.pth into ConvVAE(10) and check the negative ELBO of held-out images
# (below {{CONV_AAE.vae_test_elbo.threshold:.0f}} nats per image).
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_conv_vae_trained", grader.collect.conv_aae.collect_conv_vae_trained, ConvVAE)
### END HIDDEN TESTS
assert vae_test_loss < 200, f"Your VAE's test loss ({vae_test_loss:.1f}) is far too high: train it"
print("Visible tests passed.")

# %% [markdown]
# ### 3.2 Generating digits
#
# Draw codes from the prior $\mathcal N(0, I)$ and decode them with `vae.decoder`.

# %%
torch.manual_seed(3)
with torch.no_grad():
    generated = vae.decoder(torch.randn(30, 10, device=device)).cpu()
show_images(generated, title="convolutional VAE: decoded codes from N(0, I)")

# %% [markdown]
# **Question.** Compare these samples with those of the fully connected `BernoulliVAE` of notebook 3
# (section 2.4; there the KL term was weighted by $10^{-3}$ and its reconstructions had a test BCE
# of about 0.20 per pixel). Which model's samples look more like digits, and which are sharper? How
# much of the difference comes from the convolutions, and how much from the weight of the KL term?
#
# *Your answer here.*

# %% [markdown]
# ## 4. An adversarial autoencoder
#
# A VAE pulls its codes towards the prior with a KL term, which needs a formula for the prior's
# density. An **adversarial autoencoder** (Makhzani et al., 2015) only needs *samples* from the
# prior. A third network, the **discriminator** $D$, looks at a code and outputs a logit: large
# when it believes the code was drawn from the prior ("real", label 1), small when it believes it
# came from the encoder ("fake", label 0). The encoder plays the generator of a GAN: it is trained
# to make its codes look like prior samples to $D$. Each mini-batch has three phases:
#
# 1. **reconstruction:** update encoder and decoder on the reconstruction error;
# 2. **discriminator:** update $D$ to tell prior samples from the (detached) codes;
# 3. **generator:** update the encoder so that $D$ takes its codes for prior samples.
#
# We use an 8-D Gaussian prior $\mathcal N(0, I)$: with 8 dimensions the codes still reconstruct
# digits well, and we can check the result dimension by dimension (mean 0, variance 1) and decode
# prior samples into digits, as with a VAE. (A mixture of 10 Gaussians in 2-D is the other classic
# choice: nicer to draw, but it needs longer training to fill all ten modes.)
#
# ### 4.1 The discriminator
#
# Write `Discriminator(n_components)`: `forward(z)` takes codes `(B, n_components)` and returns
# **logits** `(B, 1)`: real numbers, no sigmoid at the end (the losses below apply it in a stable
# way). An MLP `n_components`-128-128-1 with ReLU works well. The hidden test trains your
# discriminator for 300 steps to tell $\mathcal N(0, I)$ from a shifted and shrunk Gaussian, and
# checks that the sign of its logits separates the two: an accuracy above {{CONV_AAE.discriminator_accuracy.threshold:.2f}} on new points (a
# reference solution: about {{CONV_AAE.discriminator_accuracy.reference:.2f}}).

# %% kind="solution" grade_id="discriminator"
class Discriminator(nn.Module):
    """MLP that tells samples of the prior (real) from codes produced by the encoder (fake).

    Args:
        n_components: dimension of the codes it judges, an int.
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.Sequential(
            nn.Linear(n_components, 128), nn.ReLU(),
            nn.Linear(128, 128), nn.ReLU(),
            nn.Linear(128, 1),
        )
        ### END SOLUTION

    def forward(self, z):
        """Logits (B, 1): large for codes that look drawn from the prior.

        Args:
            z: float tensor (B, n_components) of codes or of prior samples.

        Returns:
            A float tensor (B, 1) of logits (any real number, no sigmoid applied): the log-odds that
            each row was drawn from the prior rather than produced by the encoder.
        """
        ### BEGIN SOLUTION
        return self.layers(z)
        ### END SOLUTION


# %% kind="tests" grade_id="test_discriminator" points=1
some_logits = Discriminator(8)(torch.randn(5, 8))
assert tuple(some_logits.shape) == (5, 1), f"Discriminator(8) should return logits of shape (5, 1), got {tuple(some_logits.shape)}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_discriminator", grader.collect.conv_aae.collect_discriminator, Discriminator)
### END HIDDEN TESTS

# %% [markdown]
# ### 4.2 The GAN losses
#
# Both losses are binary cross-entropies on **logits**. For a logit $\ell$ the probability of
# "real" is $\sigma(\ell) = 1 / (1 + e^{-\ell})$, and
#
# $$\mathrm{BCE}(\ell, 1) = -\log \sigma(\ell) = \operatorname{softplus}(-\ell), \qquad
#   \mathrm{BCE}(\ell, 0) = -\log\big(1 - \sigma(\ell)\big) = \operatorname{softplus}(\ell),$$
#
# with $\operatorname{softplus}(u) = \log(1 + e^u)$.
#
# * `discriminator_loss(d_prior_logits, d_code_logits)`: the discriminator's logits for prior
#   samples, shape `(B1, 1)`, and for codes, shape `(B2, 1)` ($B_1$ and $B_2$ may differ). Return
#   the **sum** of the two mean cross-entropies, prior samples labelled 1 and codes labelled 0:
#
# $$\frac{1}{B_1}\sum_{i} \operatorname{softplus}(-\ell^\text{prior}_i) \;+\;
#   \frac{1}{B_2}\sum_{i} \operatorname{softplus}(\ell^\text{code}_i).$$
#
# * `generator_loss(d_code_logits)`: the encoder wants its codes labelled 1, so this is the mean of
#   $\operatorname{softplus}(-\ell^\text{code}_i)$. This is the *non-saturating* generator loss. The
#   original minimax form, minus the discriminator's loss on the codes, has almost no gradient
#   while the discriminator easily spots the codes, which is exactly the start of training.
#
# Both return scalar tensors and must stay differentiable. **Work with the logits:** the hidden
# tests use logits as large as $\pm 1000$, where $\sigma(\ell)$ rounds to exactly 0 or 1 and
# `torch.log(torch.sigmoid(...))` gives infinities. `F.binary_cross_entropy_with_logits`,
# `F.softplus` and `F.logsigmoid` are stable.

# %% kind="solution" grade_id="discriminator_loss"
def discriminator_loss(d_prior_logits, d_code_logits):
    """BCE of prior samples labelled 1 plus BCE of codes labelled 0, each averaged over its batch.

    Args:
        d_prior_logits: float tensor (B1, 1) of discriminator logits for samples of the prior.
        d_code_logits: float tensor (B2, 1) of discriminator logits for encoder codes; B2 may differ
            from B1.

    Returns:
        A differentiable scalar tensor: the mean cross-entropy of the prior logits against label 1 plus
        the mean cross-entropy of the code logits against label 0, finite even for logits of +-1000.
    """
    ### BEGIN SOLUTION
    real = F.binary_cross_entropy_with_logits(d_prior_logits, torch.ones_like(d_prior_logits))
    fake = F.binary_cross_entropy_with_logits(d_code_logits, torch.zeros_like(d_code_logits))
    return real + fake
    ### END SOLUTION


# %% kind="tests" grade_id="test_discriminator_loss" points=2
balanced = discriminator_loss(torch.zeros(4, 1), torch.zeros(3, 1))
assert balanced.shape == (), f"discriminator_loss should return a scalar, got shape {tuple(balanced.shape)}"
assert abs(float(balanced) - 2 * math.log(2)) < 1e-5, f"with all logits 0 the loss is 2 log 2 = 1.3863, got {float(balanced):.4f}"
assert float(discriminator_loss(torch.full((4, 1), 5.0), torch.full((3, 1), -5.0))) < 0.1, (
    "a discriminator that separates prior samples (large logits) from codes (small logits) should get a small loss")
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_discriminator_loss", grader.collect.conv_aae.collect_discriminator_loss, discriminator_loss)
### END HIDDEN TESTS

# %% kind="solution" grade_id="generator_loss"
def generator_loss(d_code_logits):
    """Non-saturating generator loss: BCE of the codes labelled 1 (real), averaged over the batch.

    Args:
        d_code_logits: float tensor (B, 1) of discriminator logits for encoder codes.

    Returns:
        A differentiable scalar tensor: the mean cross-entropy of the logits against label 1, which
        shrinks as the discriminator takes the codes for prior samples; finite for logits of +-1000.
    """
    ### BEGIN SOLUTION
    return F.softplus(-d_code_logits).mean()
    ### END SOLUTION


# %% kind="tests" grade_id="test_generator_loss" points=2
fooled = generator_loss(torch.zeros(4, 1))
assert fooled.shape == (), f"generator_loss should return a scalar, got shape {tuple(fooled.shape)}"
assert abs(float(fooled) - math.log(2)) < 1e-5, f"with all logits 0 the loss is log 2 = 0.6931, got {float(fooled):.4f}"
assert float(generator_loss(torch.full((4, 1), 5.0))) < float(generator_loss(torch.full((4, 1), -5.0))), (
    "the generator's loss should fall as the discriminator takes the codes for prior samples (large logits)")
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_generator_loss", grader.collect.conv_aae.collect_generator_loss, generator_loss)
### END HIDDEN TESTS

# %% [markdown]
# ### 4.3 Training
#
# Write `train_aae(autoencoder, discriminator, n_epochs, batch_size=64)` for
# `autoencoder = nn.Sequential(ConvEncoder(8), ConvDecoder(8))` and `discriminator = Discriminator(8)`,
# with three Adam optimisers and, for every mini-batch `x` of `x_train`:
#
# 1. reconstruction: `F.mse_loss(autoencoder(x), x)`, a step on encoder and decoder (learning rate
#    $10^{-3}$, default betas);
# 2. discriminator: codes `z = autoencoder[0](x).detach()` and prior samples `torch.randn_like(z)`,
#    `discriminator_loss(discriminator(prior), discriminator(z))`, a step on the discriminator
#    (learning rate $2 \cdot 10^{-4}$, betas $(0.5, 0.999)$, the usual GAN setting);
# 3. generator: `generator_loss(discriminator(autoencoder[0](x)))`, a step on the **encoder only**
#    (learning rate $5 \cdot 10^{-4}$, betas $(0.5, 0.999)$). With $2 \cdot 10^{-4}$ here as well, the
#    discriminator wins in a short run and the codes stay far too spread out.
#
# Show the three losses of the last batch and the test MSE (`test_loss(autoencoder)`, then back to
# `autoencoder.train()`) in a progress bar after every epoch. A balanced game has a discriminator loss
# around $2 \log 2 \approx 1.4$ and a generator loss around $\log 2 \approx 0.7$. The next cell
# trains for 15 epochs ({{TIME.aae}} on one CPU thread) and saves the autoencoder to `5_conv_aae_aae.pth`.
#
# **What good looks like:** the codes of the test digits have means within {{CONV_AAE.aae_abs_mean.threshold:g}} of 0 and variances
# between {{CONV_AAE.aae_min_variance.threshold}} and {{CONV_AAE.aae_max_variance.threshold}} in every dimension, and a kernel two-sample statistic (MMD, below) against
# prior samples below {{CONV_AAE.aae_mmd.threshold}} (a reference solution: about {{CONV_AAE.aae_mmd.reference:.2f}}, and 0.05 to 0.14 over the seeds we tried; codes
# with a standard deviation of 0.5 or 2 instead of 1 score about 0.3, a plain autoencoder's codes
# above 2). The test MSE stays below {{CONV_AAE.aae_mse.threshold}} (reference: about {{CONV_AAE.aae_mse.reference:.3f}}). GAN training is noisy: if your
# codes miss these marks, train again with another seed or a few more epochs.

# %% kind="solution" grade_id="train_aae"
def train_aae(autoencoder, discriminator, n_epochs, batch_size=64):
    """Train an adversarial autoencoder: reconstruction, discriminator and generator phases per batch.

    Args:
        autoencoder: nn.Sequential(ConvEncoder(n), ConvDecoder(n)) mapping images (B, 1, 28, 28) to
            reconstructions; autoencoder[0] is the encoder whose codes (B, n) are pushed to N(0, I).
        discriminator: a Discriminator(n) mapping codes (B, n) to logits (B, 1).
        n_epochs: number of passes over x_train, an int.
        batch_size: number of images per mini-batch, an int.

    Returns:
        None. Both networks are moved to `device` and trained in place.
    """
    ### BEGIN SOLUTION
    autoencoder.to(device).train()
    discriminator.to(device).train()
    encoder = autoencoder[0]
    reconstruction_optimizer = torch.optim.Adam(autoencoder.parameters(), lr=1e-3)
    discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    generator_optimizer = torch.optim.Adam(encoder.parameters(), lr=5e-4, betas=(0.5, 0.999))
    images = x_train.to(device)
    bar = progress(range(n_epochs), desc="epochs")
    for epoch in bar:
        for batch in minibatches(images, batch_size=batch_size):
            rec_loss = F.mse_loss(autoencoder(batch), batch)
            reconstruction_optimizer.zero_grad()
            rec_loss.backward()
            reconstruction_optimizer.step()

            codes = encoder(batch).detach()
            d_loss = discriminator_loss(discriminator(torch.randn_like(codes)), discriminator(codes))
            discriminator_optimizer.zero_grad()
            d_loss.backward()
            discriminator_optimizer.step()

            g_loss = generator_loss(discriminator(encoder(batch)))
            generator_optimizer.zero_grad()
            g_loss.backward()
            generator_optimizer.step()
        test = test_loss(autoencoder)  # puts it in evaluation mode
        autoencoder.train()
        bar.set_postfix(rec=f"{rec_loss.item():.4f}", d=f"{d_loss.item():.3f}", g=f"{g_loss.item():.3f}",
                        test=f"{test:.4f}")
    autoencoder.eval()
    discriminator.eval()
    ### END SOLUTION


# %% timed="aae"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
aae = nn.Sequential(ConvEncoder(8), ConvDecoder(8))
discriminator = Discriminator(8)
if not skip_training:
    train_aae(aae, discriminator, n_epochs=15)
    save_model(aae, "5_conv_aae_aae.pth")
else:
    load_model(aae, "5_conv_aae_aae.pth", device)
aae.to(device).eval()
aae_codes = encode(aae[0], x_test)
print(f"adversarial autoencoder: test MSE {test_loss(aae):.4f}")

# %% [markdown]
# ### 4.4 Do the codes follow the prior?
#
# First dimension by dimension: the means and variances of the test codes, and histograms of each
# dimension against the density of $\mathcal N(0, 1)$. Then all dimensions at once, with the
# **maximum mean discrepancy** (MMD) between the codes and as many prior samples: with a Gaussian
# kernel $k$, $\mathrm{MMD}^2 = \mathbb E\,k(z, z') + \mathbb E\,k(u, u') - 2\,\mathbb E\,k(z, u)$ for
# codes $z, z'$ and prior samples $u, u'$. It is near 0 when both sets come from the same
# distribution and grows as they differ.

# %%
def mmd(codes, samples, bandwidths=(0.5, 1.0, 2.0, 4.0)):
    """Unbiased squared MMD between two sets of points with a sum of Gaussian kernels."""
    codes, samples = codes.double(), samples.double()
    dims = codes.shape[1]

    def kernel(a, b):
        distances = torch.cdist(a, b) ** 2
        return sum(torch.exp(-distances / (2 * h ** 2 * dims)) for h in bandwidths)

    def within(a):
        k = kernel(a, a)
        return (k.sum() - k.diagonal().sum()) / (len(a) * (len(a) - 1))

    return float(within(codes) + within(samples) - 2 * kernel(codes, samples).mean())


prior_samples = torch.randn(len(aae_codes), 8, generator=torch.Generator().manual_seed(0))
print("means:    ", aae_codes.mean(0).numpy().round(2))
print("variances:", aae_codes.var(0).numpy().round(2))
print(f"MMD between the codes and prior samples: {mmd(aae_codes, prior_samples):.3f}")
print(f"MMD between two sets of prior samples:   {mmd(torch.randn(2000, 8), prior_samples):.3f}")
print(f"MMD between the 10-D autoencoder's first 8 code dimensions and the prior: "
      f"{mmd(encode(conv_ae[0], x_test)[:, :8], prior_samples):.3f}")

fig, axes = plt.subplots(2, 4, figsize=(12, 5))
grid = np.linspace(-4, 4, 200)
for j, ax in enumerate(axes.flat):
    ax.hist(aae_codes[:, j].numpy(), bins=40, range=(-4, 4), density=True, alpha=0.6, label="codes")
    ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), label="N(0, 1)")
    ax.set_title(f"dimension {j}")
axes.flat[0].legend()
plt.tight_layout()
plt.show()

fig, ax = plt.subplots(figsize=(5, 5))
ax.scatter(prior_samples[:, 0], prior_samples[:, 1], s=3, alpha=0.4, label="prior samples")
ax.scatter(aae_codes[:, 0], aae_codes[:, 1], s=3, alpha=0.4, label="codes of test digits")
ax.set_xlabel("dimension 0")
ax.set_ylabel("dimension 1")
ax.legend()
plt.show()

# %% kind="tests" grade_id="test_aae_trained" points=2
# Hidden tests load 5_conv_aae_aae.pth into nn.Sequential(ConvEncoder(8), ConvDecoder(8)) and check, on
# held-out images, the means and variances of the codes, their MMD against prior samples and the MSE.
### BEGIN HIDDEN TESTS
import grader.collect.conv_aae
import grader.collect.common
grader.collect.common.store("test_aae_trained", grader.collect.conv_aae.collect_aae_trained, ConvEncoder, ConvDecoder)
### END HIDDEN TESTS
assert aae_codes.mean(0).abs().max() < 2, "The codes are far from the prior's mean 0: check the generator phase"
print("Visible tests passed.")

# %% [markdown]
# ### 4.5 Decoding prior samples
#
# Since the codes fill the prior, codes drawn from $\mathcal N(0, I)$ should decode to digits.

# %%
torch.manual_seed(4)
with torch.no_grad():
    generated = aae[1](torch.randn(30, 8, device=device)).cpu()
show_images(generated, title="adversarial autoencoder: decoded codes from N(0, I)")

# %% [markdown]
# **Question.** Compare these samples with those of the convolutional VAE. The AAE never computes
# a density: what does it need from the prior instead? What would you change to use a mixture of 10
# Gaussians in 2-D as the prior, and what could you do with the labels then?
#
# *Your answer here.*
