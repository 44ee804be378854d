# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Variational autoencoders
#
# The autoencoders of notebook 1 map every image to one code. A *variational* autoencoder (VAE)
# is a probabilistic model instead:
#
# * a **prior** $p(z) = \mathcal N(0, I)$ over codes $z$,
# * a **decoder** that turns a code into a distribution over images, $p(x \mid z)$, and
# * an **encoder** that turns an image into a distribution over the codes that could have produced
#   it, $q(z \mid x) = \mathcal N\big(\mu(x), \operatorname{diag}\sigma^2(x)\big)$.
#
# Encoder and decoder are trained together by maximising the *evidence lower bound* (ELBO) on
# $\log p(x)$, which is the same as minimising the loss
#
# $$\mathcal L(x) = \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)}_{\texttt{loss\_kl}}
#   \; \underbrace{-\; \mathbb E_{q(z \mid x)}\big[\log p(x \mid z)\big]}_{\texttt{loss\_loglik}}
#   \;=\; -\mathrm{ELBO}(x).$$
#
# Because the codes are pushed towards the prior, you can *generate* new images: draw
# $z \sim \mathcal N(0, I)$ and decode it.
#
# In this notebook you will
# 1. build a VAE whose decoder predicts a mean **and a variance** for every pixel, and train it on
#    varianceMNIST, a version of MNIST in which the digit is hidden in the pixel variances, then
#    judge its codes with a classifier and a t-SNE map;
# 2. build the classic small VAE with a Bernoulli decoder (784-128-64-10 and back) on MNIST, and
#    use it to reconstruct, generate and interpolate digits;
# 3. compare the 2-D code space of a VAE with that of a plain autoencoder.
#
# **How grading works.** Cells marked as tests check your code. Some checks are visible here; more
# are hidden and run when your notebook is graded. The hidden tests call your functions on small
# inputs, train your `Encoder` and `Decoder` for a few hundred steps with a correct loss, and load
# the models you saved: `3_vae_encoder.pth`, `3_vae_decoder.pth` and `3_vae_bernoulli.pth`. Grading
# never trains them for you, so submit those three files with the notebook. A mistake in one
# function costs the points of that function's test cell only.
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
from aelib.data import load_mnist, minibatches, variance_mnist
from aelib.evaluation import classifier_accuracy
from aelib.plotting import scatter_codes, show_images, show_signed_images
from aelib.training import pick_device, progress

device = pick_device(skip_training)
print("Using", device)

# %% [markdown]
# ## Data: MNIST and varianceMNIST
#
# `load_mnist(split)` returns images `(N, 1, 28, 28)` with values in $[0, 1]$ and their labels.
#
# In **varianceMNIST** every pixel is redrawn each time you look at it: a pixel of intensity
# $p \in [0, 1]$ becomes $p\,\varepsilon$ with $\varepsilon \sim \mathcal N(0, 1)$, so it has mean 0
# and variance $p^2$. `variance_mnist(images)` makes such a copy (fresh noise on every call). One
# varianceMNIST image looks like scattered noise; the digit is only visible in *how much* the pixels
# vary. The average of many varianceMNIST images is zero everywhere, so an autoencoder trained with
# the mean squared error learns nothing but zeros. A model that predicts a variance for every pixel
# can find the digit: that is the first VAE of this notebook.
#
# Below: clean test digits (top) and one varianceMNIST version of them (bottom), drawn as in
# notebook 2 with a red-white-blue colour map centred on 0 (`show_signed_images`): white is 0, red
# negative, blue positive. `x_test_var` is one fixed varianceMNIST version of the test images, used
# for all evaluations here.

# %%
x_train, y_train = load_mnist("train")
x_test, y_test = load_mnist("test")
x_test_var = variance_mnist(x_test, generator=torch.Generator().manual_seed(0))
print("training images:", tuple(x_train.shape), " test images:", tuple(x_test.shape))
show_images(x_test[:10], title="MNIST test images")
show_signed_images(x_test_var[:10], title="the same digits in varianceMNIST")

# %% [markdown]
# ## 1. A VAE with a Gaussian decoder
#
# ### 1.1 The encoder and the re-parameterisation trick
#
# Write `Encoder(n_components)`:
#
# * `forward(x)` takes images `x` of shape `(B, 1, 28, 28)` and returns the tuple
#   `(z_mean, z_logvar)`, both of shape `(B, n_components)`: the means $\mu$ and the log-variances
#   $\log\sigma^2$ of $q(z \mid x)$. Predicting the *log*-variance lets the network output any real
#   number while the variance $\sigma^2 = e^{\log\sigma^2}$ stays positive.
# * `sample(z_mean, z_logvar)` returns one sample $z \sim q(z \mid x)$ per row, of the same shape,
#   with the **re-parameterisation trick**:
#
# $$z = \mu + \sigma \odot \varepsilon = \texttt{z\_mean} + e^{\frac12\,\texttt{z\_logvar}} \odot
#   \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I).$$
#
#   The randomness sits in $\varepsilon$ alone, so gradients flow from $z$ back to both `z_mean` and
#   `z_logvar`. Mind the $\frac12$: the standard deviation is $e^{\frac12\log\sigma^2}$. Every call
#   draws a new $\varepsilon$ (`torch.randn_like` helps).
#
# An architecture that works well: flatten the image, two hidden layers of 512 and 256 ReLU units,
# and two linear output layers ("heads") of `n_components` units each, one for the means and one for
# the log-variances. **A tip for varianceMNIST:** the sign of a pixel carries no information, only its
# size does, so feed `x.abs()` (or `x ** 2`) to the first layer; a plain MLP has to learn that by
# itself and needs much longer.

# %% kind="solution" grade_id="encoder"
class Encoder(nn.Module):
    """Gaussian encoder of the VAE: gives the parameters of q(z | x) and draws codes from it.

    Args:
        n_components: dimension of the code z, an int.
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512), nn.ReLU(),
            nn.Linear(512, 256), nn.ReLU(),
        )
        self.mean_head = nn.Linear(256, n_components)
        self.logvar_head = nn.Linear(256, n_components)
        ### END SOLUTION

    def forward(self, x):
        """Means and log-variances, each (B, n_components), of q(z | x) for images x (B, 1, 28, 28).

        Args:
            x: float tensor (B, 1, 28, 28) of images, e.g. varianceMNIST images with values of either sign.

        Returns:
            A tuple (z_mean, z_logvar) of float tensors (B, n_components): the means of q(z | x) and the
            logarithms of its variances (any real number; the variance is exp(z_logvar)).
        """
        ### BEGIN SOLUTION
        hidden = self.body(x.abs())
        return self.mean_head(hidden), self.logvar_head(hidden)
        ### END SOLUTION

    def sample(self, z_mean, z_logvar):
        """One re-parameterised sample z = z_mean + exp(z_logvar / 2) * eps, eps ~ N(0, I), per row.

        Args:
            z_mean: float tensor (B, n_components) of means of q(z | x).
            z_logvar: float tensor (B, n_components) of log-variances of q(z | x).

        Returns:
            A float tensor (B, n_components): one code per row drawn from N(z_mean, diag exp(z_logvar)),
            with new noise on every call. Gradients flow back to both z_mean and z_logvar.
        """
        ### BEGIN SOLUTION
        eps = torch.randn_like(z_mean)
        return z_mean + torch.exp(0.5 * z_logvar) * eps
        ### END SOLUTION


# %% kind="tests" grade_id="test_encoder" points=1
encoder_output = Encoder(10)(torch.randn(4, 1, 28, 28))
assert isinstance(encoder_output, tuple) and len(encoder_output) == 2, "forward should return (z_mean, z_logvar)"
assert tuple(encoder_output[0].shape) == (4, 10), f"z_mean should have shape (4, 10), got {tuple(encoder_output[0].shape)}"
assert tuple(encoder_output[1].shape) == (4, 10), f"z_logvar should have shape (4, 10), got {tuple(encoder_output[1].shape)}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_encoder", grader.collect.vae.collect_encoder, Encoder)
### END HIDDEN TESTS

# %% [markdown]
# The hidden test of `sample` draws many samples for a few fixed means and log-variances and checks
# that their average is `z_mean` and their variance is `exp(z_logvar)` (within six standard errors),
# that two calls give different samples, and that gradients reach both arguments.

# %% kind="tests" grade_id="test_sample" points=2
some_mean, some_logvar = torch.zeros(5, 3), torch.zeros(5, 3)
some_z = Encoder(3).sample(some_mean, some_logvar)
assert tuple(some_z.shape) == (5, 3), f"sample should return shape (5, 3), got {tuple(some_z.shape)}"
assert not torch.equal(some_z, some_mean), "sample should add noise to z_mean"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_sample", grader.collect.vae.collect_sample, Encoder)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.2 The KL divergence
#
# For $q = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ and the prior $p = \mathcal N(0, I)$ the KL
# divergence has a closed form (no sampling needed). For one image, with $J$ code dimensions,
#
# $$\mathrm{KL}(q \,\|\, p) = \frac12 \sum_{j=1}^{J} \left(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2\right).$$
#
# Write `loss_kl(z_mean, z_logvar)`: inputs of shape `(B, J)`; return this KL **summed over the $J$
# code dimensions and averaged over the $B$ images** of the batch, as a scalar tensor (keep it
# differentiable: torch operations only). It is zero exactly when $q$ is the prior ($\mu = 0$,
# $\log\sigma^2 = 0$) and positive otherwise.

# %% kind="solution" grade_id="loss_kl"
def loss_kl(z_mean, z_logvar):
    """KL(q(z|x) || N(0, I)) summed over code dimensions and averaged over the batch.

    Args:
        z_mean: float tensor (B, J) of means of the Gaussian q(z | x).
        z_logvar: float tensor (B, J) of log-variances of q(z | x).

    Returns:
        A differentiable scalar tensor: the closed-form KL divergence from q(z | x) to the standard
        normal prior, added up over the J dimensions and averaged over the B images. It is 0 only
        when every mean and every log-variance is 0.
    """
    ### BEGIN SOLUTION
    per_image = 0.5 * (torch.exp(z_logvar) + z_mean ** 2 - 1 - z_logvar).sum(dim=1)
    return per_image.mean()
    ### END SOLUTION


# %% kind="tests" grade_id="test_loss_kl" points=2
kl_zero = loss_kl(torch.zeros(4, 5), torch.zeros(4, 5))
assert kl_zero.shape == (), f"loss_kl should return a scalar, got shape {tuple(kl_zero.shape)}"
assert abs(float(kl_zero)) < 1e-6, f"loss_kl should be 0 when q is the prior, got {float(kl_zero)}"
kl_known = loss_kl(torch.zeros(3, 3), torch.full((3, 3), math.log(2)))
assert abs(float(kl_known) - 0.46028) < 1e-4, f"expected 0.46028 for z_logvar = log 2 on a 3x3 batch, got {float(kl_known):.5f}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_loss_kl", grader.collect.vae.collect_loss_kl, loss_kl)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.3 The decoder
#
# Write `Decoder(n_components)`: `forward(z)` takes codes of shape `(B, n_components)` and returns
# the tuple `(y_mean, y_logvar)`, both of shape `(B, 1, 28, 28)`: the mean and the log-variance of a
# Gaussian distribution for every pixel, $p(x \mid z) = \mathcal N\big(x;\, y_\text{mean}(z),\,
# \operatorname{diag} e^{y_\text{logvar}(z)}\big)$. Mirror the encoder: two hidden layers of 256 and
# 512 ReLU units and two linear heads of 784 outputs, reshaped to `(B, 1, 28, 28)`.
#
# **The log-variance needs a floor.** Many pixels are always exactly 0 (the background). For such a
# pixel the best Gaussian has variance 0: its log-likelihood grows without bound as
# `y_logvar` $\to -\infty$, training chases that, and the loss soon becomes `-inf` or `nan`.
# Keep `y_logvar` above a floor instead; a smooth way is
#
# $$y_\text{logvar} = -6 + \operatorname{softplus}(h + 6),$$
#
# where $h$ is the output of the log-variance head and $\operatorname{softplus}(u) = \log(1 + e^u)$
# (`F.softplus`): it is never below $-6$ (a standard deviation of $e^{-3} \approx 0.05$), and it
# is about $h$ itself when $h$ is well above $-6$. Use the floor $-6$: the figures quoted
# below assume it. The hidden test checks that `y_logvar` never goes below $-10$, whatever the code.

# %% kind="solution" grade_id="decoder"
class Decoder(nn.Module):
    """Gaussian decoder of the VAE: gives a mean and a log-variance for every pixel of p(x | z).

    Args:
        n_components: dimension of the codes it accepts, an int.
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.body = nn.Sequential(
            nn.Linear(n_components, 256), nn.ReLU(),
            nn.Linear(256, 512), nn.ReLU(),
        )
        self.mean_head = nn.Linear(512, 784)
        self.logvar_head = nn.Linear(512, 784)
        ### END SOLUTION

    def forward(self, z):
        """Per-pixel means and log-variances of p(x | z) for a batch of codes.

        Args:
            z: float tensor (B, n_components) of codes.

        Returns:
            A tuple (y_mean, y_logvar) of float tensors (B, 1, 28, 28): the mean of each pixel (any real
            number) and the logarithm of its variance, kept above a floor (-6 with the suggested
            softplus) so that the variances cannot collapse to 0.
        """
        ### BEGIN SOLUTION
        hidden = self.body(z)
        y_mean = self.mean_head(hidden).view(-1, 1, 28, 28)
        y_logvar = -6.0 + F.softplus(self.logvar_head(hidden) + 6.0)
        return y_mean, y_logvar.view(-1, 1, 28, 28)
        ### END SOLUTION


# %% kind="tests" grade_id="test_decoder" points=1
decoder_output = Decoder(10)(torch.randn(4, 10))
assert isinstance(decoder_output, tuple) and len(decoder_output) == 2, "forward should return (y_mean, y_logvar)"
assert tuple(decoder_output[0].shape) == (4, 1, 28, 28), f"y_mean should have shape (4, 1, 28, 28), got {tuple(decoder_output[0].shape)}"
assert tuple(decoder_output[1].shape) == (4, 1, 28, 28), f"y_logvar should have shape (4, 1, 28, 28), got {tuple(decoder_output[1].shape)}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_decoder", grader.collect.vae.collect_decoder, Decoder)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.4 The expected negative log-likelihood
#
# The second part of the loss is $-\mathbb E_{q(z \mid x)}[\log p(x \mid z)]$. We estimate the
# expectation with a single sample $z$ from `sample`, decode it to `(y_mean, y_logvar)`, and
# compute the negative Gaussian log-likelihood of the image $x$, **summed over the pixels** $d$ and
# **averaged over the images** of the batch:
#
# $$-\log p(x \mid z) = \frac12 \sum_{d} \left( y_{\text{logvar},d} +
#   \frac{(x_d - y_{\text{mean},d})^2}{e^{y_{\text{logvar},d}}} \right) \;\left[+\; 784 \cdot
#   \tfrac12\log 2\pi\right].$$
#
# The constant in brackets does not change the gradients; include it or leave it out, the tests
# accept both. Write `loss_loglik(y_mean, y_logvar, x)`: all three inputs have shape
# `(B, 1, 28, 28)`; return a differentiable scalar tensor.
#
# Both terms matter: $(x - y_\text{mean})^2 / e^{y_\text{logvar}}$ rewards a large variance, and
# $y_\text{logvar}$ itself penalises it. Their balance makes $e^{y_\text{logvar}}$ match the actual
# squared error, which is how the model learns the variances that carry the digits of varianceMNIST.

# %% kind="solution" grade_id="loss_loglik"
def loss_loglik(y_mean, y_logvar, x):
    """Gaussian negative log-likelihood of x, summed over pixels and averaged over the batch.

    Args:
        y_mean: float tensor (B, 1, 28, 28) of predicted pixel means.
        y_logvar: float tensor (B, 1, 28, 28) of predicted pixel log-variances.
        x: float tensor (B, 1, 28, 28) of the observed images.

    Returns:
        A differentiable scalar tensor: -log N(x; y_mean, exp(y_logvar)) added up over the 784 pixels of
        an image and averaged over the B images. The constant 784 * log(2 * pi) / 2 may be included or
        left out.
    """
    ### BEGIN SOLUTION
    per_pixel = 0.5 * (y_logvar + (x - y_mean) ** 2 / torch.exp(y_logvar))
    return per_pixel.flatten(start_dim=1).sum(dim=1).mean()
    ### END SOLUTION


# %% kind="tests" grade_id="test_loss_loglik" points=2
perfect = loss_loglik(torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, 28, 28))
assert perfect.shape == (), f"loss_loglik should return a scalar, got shape {tuple(perfect.shape)}"
assert abs(float(perfect)) < 1e-4 or abs(float(perfect) - 784 * 0.5 * math.log(2 * math.pi)) < 1e-2, (
    f"with y_mean = x = 0 and y_logvar = 0 the loss is 0 (or 720.4 with the constant), got {float(perfect):.4f}")
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_loss_loglik", grader.collect.vae.collect_loss_loglik, loss_loglik)
### END HIDDEN TESTS

# %% [markdown]
# Before training for real, a quick health check of the architecture: the hidden test below trains
# a fresh `Encoder(10)` and `Decoder(10)` for 300 Adam steps on varianceMNIST with a correct loss and
# checks that the loss (the negative ELBO per image) on test images ends below
# ${{VAE.brief_training_elbo.threshold:,.0f}}$ (a reference solution: about ${{VAE.brief_training_elbo.reference:,.0f}}$). Like every loss quoted in this
# notebook, these leave out the constant $784 \cdot \tfrac12 \log 2\pi \approx 720.4$ of `loss_loglik`: the hidden
# tests compute the loss from your model's outputs themselves, so including the constant changes nothing there.

# %% kind="tests" grade_id="test_vae_learns" points=2
codes_mean, codes_logvar = Encoder(10)(x_test_var[:8])
decoded_mean, decoded_logvar = Decoder(10)(codes_mean)
assert tuple(decoded_mean.shape) == tuple(decoded_logvar.shape) == (8, 1, 28, 28), "Decoder(10) should accept the codes of Encoder(10)"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_vae_learns", grader.collect.vae.collect_vae_learns, Encoder, Decoder)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.5 Training
#
# Write `train_vae(encoder, decoder, n_epochs, lr=1e-3, batch_size=64)`. For each mini-batch of
# `x_train` (`minibatches(x_train, batch_size=batch_size)`):
# 1. turn the clean batch into varianceMNIST with `variance_mnist` (fresh noise every time: the
#    model sees new noise in every epoch),
# 2. encode it, draw $z$ with `encoder.sample`, decode $z$,
# 3. take the loss `loss_kl(...) + loss_loglik(...)` (the negative ELBO), and
# 4. take one Adam step (learning rate `lr`) on the parameters of both networks.
#
# Move the models and the data to `device`, and return the list of mean training losses per epoch.
# Show a progress bar over the epochs (`bar = progress(range(n_epochs))`) whose postfix gives, after
# every epoch, the mean training loss and the same loss on `x_test_var[:1000]`, computed without
# gradients, in `eval()` mode, and inside `with torch.random.fork_rng():` so that sampling the test
# codes does not change the random draws of training (`bar.set_postfix(train=..., test=...)`).
#
# The cell after it trains a 10-dimensional VAE for 25 epochs and saves `3_vae_encoder.pth` and
# `3_vae_decoder.pth`. That takes {{TIME.gaussian_vae}} on one CPU thread (on a CPU, 10 epochs are
# plenty with all 60,000 images, and a GPU helps).

# %% kind="solution" grade_id="train_vae"
def train_vae(encoder, decoder, n_epochs, lr=1e-3, batch_size=64):
    """Train encoder and decoder on varianceMNIST by minimising loss_kl + loss_loglik.

    Args:
        encoder: an Encoder; it is moved to `device` and trained in place.
        decoder: a Decoder with the same n_components; it is moved to `device` and trained in place.
        n_epochs: number of passes over x_train, an int (every pass draws new varianceMNIST noise).
        lr: learning rate of the single Adam optimiser over both networks, a float.
        batch_size: number of images per mini-batch, an int.

    Returns:
        A list of n_epochs floats: the training loss (negative ELBO per image) averaged over each epoch.
    """
    ### BEGIN SOLUTION
    encoder.to(device).train()
    decoder.to(device).train()
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=lr)
    images = x_train.to(device)
    history = []
    bar = progress(range(n_epochs), desc="epochs")
    for epoch in bar:
        total, count = 0.0, 0
        for batch in minibatches(images, batch_size=batch_size):
            noisy = variance_mnist(batch)
            z_mean, z_logvar = encoder(noisy)
            y_mean, y_logvar = decoder(encoder.sample(z_mean, z_logvar))
            loss = loss_kl(z_mean, z_logvar) + loss_loglik(y_mean, y_logvar, noisy)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append(total / count)
        encoder.eval()
        decoder.eval()
        with torch.no_grad(), torch.random.fork_rng():  # sampling test codes leaves the training draws as they were
            test_images = x_test_var[:1000].to(device)
            z_mean, z_logvar = encoder(test_images)
            y_mean, y_logvar = decoder(encoder.sample(z_mean, z_logvar))
            test = (loss_kl(z_mean, z_logvar) + loss_loglik(y_mean, y_logvar, test_images)).item()
        encoder.train()
        decoder.train()
        bar.set_postfix(train=f"{history[-1]:.0f}", test=f"{test:.0f}")
    encoder.eval()
    decoder.eval()
    return history
    ### END SOLUTION


# %% timed="gaussian_vae"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
encoder, decoder = Encoder(10), Decoder(10)
if not skip_training:
    history = train_vae(encoder, decoder, n_epochs=25, lr=1e-3, batch_size=64)
    plt.plot(history)
    plt.xlabel("epoch")
    plt.ylabel("training loss (negative ELBO)")
    plt.show()
    save_model(encoder, "3_vae_encoder.pth")
    save_model(decoder, "3_vae_decoder.pth")
else:
    load_model(encoder, "3_vae_encoder.pth", device)
    load_model(decoder, "3_vae_decoder.pth", device)
encoder.to(device).eval()
decoder.to(device).eval()

# %% [markdown]
# ### 1.6 What did it learn?
#
# The loss on the test images is a negative number: densities of continuous pixels can exceed 1,
# and the many background pixels, predicted with the floor variance, each contribute
# $\frac12(-6) = -3$. The printout splits it into its two parts.
#
# Then, for ten test digits: the clean digit (which the model never sees), its varianceMNIST input,
# the predicted means `y_mean` (close to 0 everywhere, as they should be) and the predicted standard
# deviations $e^{\frac12 y_\text{logvar}}$, computed from the code means `z_mean`. The standard
# deviations are the model's reconstruction of the digit.
#
# **What good looks like** (losses without the constant $784 \cdot \tfrac12 \log 2\pi \approx 720.4$: if your
# `loss_loglik` includes it, the losses your progress bar shows are 720.4 higher, a test loss around $-900$):
# a test loss around $-1,600$ (a reference solution: ${{VAE.gaussian_test_elbo.reference:,.0f}}$, of which
# the KL is about 24), and below ${{VAE.gaussian_test_elbo.threshold:,.0f}}$ in any case (a model that ignores its codes and predicts the same
# variances for every image gets about $-1,150$); standard deviations that look like blurred
# versions of the clean digits, with a per-pixel squared error to the clean intensities below {{VAE.gaussian_std_mse.threshold}}
# (a reference solution: about {{VAE.gaussian_std_mse.reference:.3f}}; the average digit gives 0.085).

# %%
@torch.no_grad()
def gaussian_vae_outputs(images, n=2000):
    """z_mean, z_logvar of varianceMNIST images and the decoded (y_mean, y_logvar) of those code means."""
    z_mean, z_logvar = encoder(images[:n].to(device))
    y_mean, y_logvar = decoder(z_mean)
    return z_mean.cpu(), z_logvar.cpu(), y_mean.cpu(), y_logvar.cpu()


with torch.no_grad():
    z_mean, z_logvar = encoder(x_test_var.to(device))
    z_sampled = encoder.sample(z_mean, z_logvar)
    y_mean, y_logvar = decoder(z_sampled)
    test_kl = float(loss_kl(z_mean, z_logvar))
    test_nll = float(loss_loglik(y_mean, y_logvar, x_test_var.to(device)))
print(f"test loss {test_kl + test_nll:.1f} = KL {test_kl:.1f} + negative log-likelihood {test_nll:.1f}")

z_mean, z_logvar, y_mean, y_logvar = gaussian_vae_outputs(x_test_var, n=10)
show_images(x_test[:10], title="clean test digits")
show_signed_images(x_test_var[:10], title="varianceMNIST inputs")
show_signed_images(y_mean, title="predicted means y_mean", limit=1.0)
show_images(torch.exp(0.5 * y_logvar), title="predicted standard deviations exp(y_logvar / 2)")

# %% kind="tests" grade_id="test_vae_trained" points=2
# Hidden tests load 3_vae_encoder.pth and 3_vae_decoder.pth into Encoder(10) and Decoder(10) and
# check, on held-out varianceMNIST images, the negative ELBO and how close the predicted standard
# deviations (from the code means) are to the clean digits.
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_vae_trained", grader.collect.vae.collect_vae_trained, Encoder, Decoder)
### END HIDDEN TESTS
_, _, _, check_logvar = gaussian_vae_outputs(x_test_var, n=500)
std_error = float(((torch.exp(0.5 * check_logvar) - x_test[:500]) ** 2).mean())
assert std_error < 0.085, f"The predicted standard deviations (squared error {std_error:.3f}) are no better than the average digit: train longer"
print("Visible tests passed.")

# %% [markdown]
# **Predictive variances.** The decoder's variances $e^{y_\text{logvar}}$ are the model's
# uncertainty about every pixel. For varianceMNIST they are the whole story: a pixel of intensity
# $p$ has variance $p^2$.

# %%
show_images(torch.exp(y_logvar), title="predictive variances exp(y_logvar)")

# %% [markdown]
# **Generating.** Draw codes from the prior $\mathcal N(0, I)$ and decode them. The predicted
# standard deviations show the digit the model imagines; an actual sample of the model,
# $y_\text{mean} + e^{\frac12 y_\text{logvar}} \odot \varepsilon$, looks like a varianceMNIST image.

# %%
torch.manual_seed(2)
with torch.no_grad():
    prior_mean, prior_logvar = decoder(torch.randn(20, 10, device=device))
prior_std = torch.exp(0.5 * prior_logvar).cpu()
show_images(prior_std, title="codes from the prior: predicted standard deviations")
show_signed_images(prior_mean.cpu() + prior_std * torch.randn_like(prior_std), title="samples of the model")

# %% [markdown]
# ### 1.7 How good are the codes?
#
# Train a logistic-regression classifier on the code means `z_mean` of (varianceMNIST versions of)
# training images and measure its accuracy on the codes of the test images (`classifier_accuracy`).
# Labels were never used to train the VAE.
#
# **What good looks like:** above {{VAE.gaussian_accuracy.threshold:.2f}}. A reference solution reaches about {{VAE.gaussian_accuracy.reference:.2f}} here; a published
# run of this task reached about 0.87. An encoder that is fed the raw pixels instead of their size
# stays near 0.5 after the same training.

# %%
@torch.no_grad()
def code_means(images, batch_size=1000):
    """The code means z_mean of images, computed in batches, on the CPU."""
    return torch.cat([encoder(images[i:i + batch_size].to(device))[0].cpu()
                      for i in range(0, len(images), batch_size)])


train_var = variance_mnist(x_train[:10000], generator=torch.Generator().manual_seed(1))
accuracy = classifier_accuracy(code_means(train_var), y_train[:10000], code_means(x_test_var), y_test)
print(f"logistic regression on the code means: test accuracy {accuracy:.3f}")

# %% kind="tests" grade_id="test_vae_classifier" points=2
# Hidden tests train a logistic-regression classifier on the code means of your saved encoder
# (3_vae_encoder.pth) and check its accuracy on held-out varianceMNIST images.
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_vae_classifier", grader.collect.vae.collect_vae_codes, Encoder)
### END HIDDEN TESTS
assert accuracy > 0.3, "The codes hardly tell the digits apart: check your encoder and its training"
print("Visible tests passed.")

# %% [markdown]
# A t-SNE map of the code means of 1,000 varianceMNIST test images (a few seconds), coloured by their
# digit, as for the autoencoders of notebooks 1 and 2: the VAE never saw a label, yet digits of the
# same class should gather.

# %%
from sklearn.manifold import TSNE

vae_tsne_map = TSNE(n_components=2, init="pca", random_state=0).fit_transform(code_means(x_test_var[:1000]).numpy())
scatter_codes(torch.as_tensor(vae_tsne_map), y_test[:1000], title="t-SNE of the VAE code means (varianceMNIST)")

# %% [markdown]
# ## 2. A VAE with a Bernoulli decoder
#
# A common small VAE for MNIST treats every pixel intensity as the probability of a black-or-white
# pixel: the decoder ends with a sigmoid and outputs one probability per pixel, and the
# reconstruction loss is the **binary cross-entropy** (BCE). Its configuration:
#
# * encoder 784-128-64 with ReLU, then two linear heads of 10 units: the means and the
#   log-variances of $q(z \mid x)$;
# * decoder 10-64-128-784 with ReLU and a sigmoid at the end;
# * loss = mean pixel-wise BCE + 0.001 · KL; Adam with learning rate $10^{-4}$, batches of 128.
#
# ### 2.1 The binary cross-entropy
#
# Write `loss_bce(x_rec, x)`: `x_rec` holds probabilities in $(0, 1)$ (the decoder's sigmoid
# outputs) and `x` the target intensities in $[0, 1]$, both `(B, 1, 28, 28)`. Return the **mean**
# over all pixels and images of
#
# $$-\big(x \log x_\text{rec} + (1 - x) \log(1 - x_\text{rec})\big)$$
#
# as a differentiable scalar tensor. Careful: `x_rec` are already probabilities, not logits.

# %% kind="solution" grade_id="loss_bce"
def loss_bce(x_rec, x):
    """Mean pixel-wise binary cross-entropy between probabilities x_rec and targets x.

    Args:
        x_rec: float tensor (B, 1, 28, 28) of predicted probabilities in (0, 1), not logits.
        x: float tensor (B, 1, 28, 28) of target intensities in [0, 1].

    Returns:
        A differentiable scalar tensor: the binary cross-entropy averaged over every pixel of every
        image (not summed).
    """
    ### BEGIN SOLUTION
    return F.binary_cross_entropy(x_rec, x)
    ### END SOLUTION


# %% kind="tests" grade_id="test_loss_bce" points=2
bce_value = loss_bce(torch.full((2, 1, 28, 28), 0.5), torch.ones(2, 1, 28, 28))
assert bce_value.shape == (), f"loss_bce should return a scalar, got shape {tuple(bce_value.shape)}"
assert abs(float(bce_value) - math.log(2)) < 1e-4, f"BCE of probability 0.5 for a white pixel is log 2 = 0.6931, got {float(bce_value):.4f}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_loss_bce", grader.collect.vae.collect_loss_bce, loss_bce)
### END HIDDEN TESTS

# %% [markdown]
# ### 2.2 The model
#
# Write `BernoulliVAE(n_components=10)` with three methods:
#
# * `encode(x)`: images `(B, 1, 28, 28)` $\to$ `(z_mean, z_logvar)`, each `(B, n_components)`;
# * `decode(z)`: codes `(B, n_components)` $\to$ pixel probabilities `(B, 1, 28, 28)` in $(0, 1)$;
# * `forward(x)`: encodes `x`, draws $z$ with the re-parameterisation trick (as in
#   `Encoder.sample`), decodes it, and returns the tuple `(x_rec, z_mean, z_logvar)`.
#
# The layers are exactly those listed above (for `n_components=10` the model has 220,196
# parameters). The hidden test checks the layer sizes, shapes and output range.

# %% kind="solution" grade_id="bernoulli_vae"
class BernoulliVAE(nn.Module):
    """Small fully connected VAE for MNIST whose decoder gives one Bernoulli probability per pixel.

    Args:
        n_components: dimension of the code z, an int.
    """

    def __init__(self, n_components=10):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.to_mean = nn.Linear(64, n_components)
        self.to_logvar = nn.Linear(64, n_components)
        self.decoder = nn.Sequential(
            nn.Linear(n_components, 64), nn.ReLU(),
            nn.Linear(64, 128), nn.ReLU(),
            nn.Linear(128, 784), nn.Sigmoid(),
            nn.Unflatten(1, (1, 28, 28)),
        )
        ### END SOLUTION

    def encode(self, x):
        """Means and log-variances (B, n_components) of q(z | x).

        Args:
            x: float tensor (B, 1, 28, 28) of images with pixel values in [0, 1].

        Returns:
            A tuple (z_mean, z_logvar) of float tensors (B, n_components): the means and the
            log-variances of the Gaussian q(z | x).
        """
        ### BEGIN SOLUTION
        hidden = self.encoder(x)
        return self.to_mean(hidden), self.to_logvar(hidden)
        ### END SOLUTION

    def decode(self, z):
        """Pixel probabilities (B, 1, 28, 28) for codes z (B, n_components).

        Args:
            z: float tensor (B, n_components) of codes.

        Returns:
            A float tensor (B, 1, 28, 28) of probabilities in (0, 1) (sigmoid outputs, not logits).
        """
        ### BEGIN SOLUTION
        return self.decoder(z)
        ### END SOLUTION

    def forward(self, x):
        """Encode x, draw one code per image with the re-parameterisation trick and decode it.

        Args:
            x: float tensor (B, 1, 28, 28) of images with pixel values in [0, 1].

        Returns:
            A tuple (x_rec, z_mean, z_logvar): x_rec is a float tensor (B, 1, 28, 28) of pixel
            probabilities in (0, 1) decoded from the sampled codes; z_mean and z_logvar are float
            tensors (B, n_components), the means and log-variances of q(z | x).
        """
        ### BEGIN SOLUTION
        z_mean, z_logvar = self.encode(x)
        z = z_mean + torch.exp(0.5 * z_logvar) * torch.randn_like(z_mean)
        return self.decode(z), z_mean, z_logvar
        ### END SOLUTION


# %% kind="tests" grade_id="test_bernoulli_vae" points=2
x_rec, rec_mean, rec_logvar = BernoulliVAE()(x_test[:3])
assert tuple(x_rec.shape) == (3, 1, 28, 28), f"x_rec should have shape (3, 1, 28, 28), got {tuple(x_rec.shape)}"
assert tuple(rec_mean.shape) == tuple(rec_logvar.shape) == (3, 10), "z_mean and z_logvar should have shape (3, 10)"
assert x_rec.min() > 0 and x_rec.max() < 1, "decode should return probabilities: end with a sigmoid"
n_parameters = sum(p.numel() for p in BernoulliVAE().parameters())
assert n_parameters == 220196, f"BernoulliVAE() should have 220196 parameters, got {n_parameters}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_bernoulli_vae", grader.collect.vae.collect_bernoulli_vae, BernoulliVAE)
### END HIDDEN TESTS

# %% [markdown]
# ### 2.3 Training
#
# Write `train_bernoulli(model, n_epochs, lr=1e-4, batch_size=128, kl_weight=1e-3)`: mini-batches of
# the clean `x_train`, the loss `loss_bce(x_rec, x) + kl_weight * loss_kl(z_mean, z_logvar)`, Adam
# with learning rate `lr`, on `device`; return the mean training losses per epoch. As in `train_vae`,
# show the mean training loss and the same loss on `x_test[:1000]` in a progress bar after every
# epoch.
#
# The next cell trains a `BernoulliVAE()` for 50 epochs (about 15 seconds on the offline set) and
# saves it to `3_vae_bernoulli.pth`. **What good looks like:** a test BCE per pixel, for images
# decoded from their code means, below {{VAE.bernoulli_test_bce.threshold}} (a reference solution: about {{VAE.bernoulli_test_bce.reference:.2f}}; predicting the
# average image gives 0.274). The 50 epochs take {{TIME.bernoulli_vae}} on one CPU thread.

# %% kind="solution" grade_id="train_bernoulli"
def train_bernoulli(model, n_epochs, lr=1e-4, batch_size=128, kl_weight=1e-3):
    """Train a BernoulliVAE on x_train with loss_bce + kl_weight * loss_kl; return the epoch losses.

    Args:
        model: a BernoulliVAE; it is moved to `device` and trained in place.
        n_epochs: number of passes over the clean x_train, an int.
        lr: learning rate of the Adam optimiser, a float.
        batch_size: number of images per mini-batch, an int.
        kl_weight: factor of the KL term, a float >= 0 (0 leaves an autoencoder with noisy codes).

    Returns:
        A list of n_epochs floats: the weighted training loss averaged over each epoch.
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
            loss = loss_bce(x_rec, batch) + kl_weight * loss_kl(z_mean, z_logvar)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append(total / count)
        model.eval()
        with torch.no_grad(), torch.random.fork_rng():  # sampling test codes leaves the training draws as they were
            test_images = x_test[:1000].to(device)
            x_rec, z_mean, z_logvar = model(test_images)
            test = (loss_bce(x_rec, test_images) + kl_weight * loss_kl(z_mean, z_logvar)).item()
        model.train()
        bar.set_postfix(train=f"{history[-1]:.4f}", test=f"{test:.4f}")
    model.eval()
    return history
    ### END SOLUTION


# %% timed="bernoulli_vae"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
bernoulli_vae = BernoulliVAE()
if not skip_training:
    history = train_bernoulli(bernoulli_vae, n_epochs=50)
    print(f"last training loss: {history[-1]:.4f}")
    save_model(bernoulli_vae, "3_vae_bernoulli.pth")
else:
    load_model(bernoulli_vae, "3_vae_bernoulli.pth", device)
bernoulli_vae.to(device).eval()
with torch.no_grad():
    test_mean, _ = bernoulli_vae.encode(x_test.to(device))
    reconstructions = bernoulli_vae.decode(test_mean).cpu()
print(f"test BCE per pixel (decoded from the code means): {float(F.binary_cross_entropy(reconstructions, x_test)):.4f}")
show_images(torch.cat([x_test[:10], reconstructions[:10]]), title="test digits (top) and reconstructions (bottom)")

# %% kind="tests" grade_id="test_bernoulli_trained" points=2
# Hidden tests load 3_vae_bernoulli.pth into BernoulliVAE() and check the BCE per pixel of held-out
# images decoded from their code means (below {{VAE.bernoulli_test_bce.threshold}}).
### BEGIN HIDDEN TESTS
import grader.collect.vae
import grader.collect.common
grader.collect.common.store("test_bernoulli_trained", grader.collect.vae.collect_bernoulli_trained, BernoulliVAE)
### END HIDDEN TESTS
assert float(F.binary_cross_entropy(reconstructions, x_test)) < 0.274, "Your model does no better than the average image: train it"
print("Visible tests passed.")

# %% [markdown]
# ### 2.4 Generating and interpolating
#
# Decoding codes drawn from the prior $\mathcal N(0, I)$ gives new digits; some are blurry or
# ambiguous, since this small model was trained briefly.

# %%
torch.manual_seed(3)
with torch.no_grad():
    generated = bernoulli_vae.decode(torch.randn(20, 10, device=device)).cpu()
show_images(generated, title="decoded codes from N(0, I)")

# %% [markdown]
# Write `interpolate(model, x_start, x_end, n_steps=10)`: encode the two images `x_start` and
# `x_end` (each `(1, 1, 28, 28)`) to their code means $z_0$ and $z_1$, decode the codes
# $z_0 + t\,(z_1 - z_0)$ for `n_steps` values of $t$ evenly spaced from 0 to 1 (`torch.linspace`),
# and return the decoded images, shape `(n_steps, 1, 28, 28)`. Because the VAE's codes fill the
# prior without gaps, the images in between should look like digits morphing into each other.

# %% kind="solution" grade_id="interpolate"
@torch.no_grad()
def interpolate(model, x_start, x_end, n_steps=10):
    """Decode n_steps codes on the straight line between the code means of x_start and x_end.

    Args:
        model: a trained BernoulliVAE (anything with its encode and decode methods), on any device.
        x_start: float tensor (1, 1, 28, 28), the image at the start of the path.
        x_end: float tensor (1, 1, 28, 28), the image at the end of the path.
        n_steps: number of evenly spaced points on the path, both ends included, an int.

    Returns:
        A float tensor (n_steps, 1, 28, 28) of pixel probabilities in (0, 1), on the CPU and without
        gradients: the first row decodes the code mean of x_start, the last that of x_end.
    """
    ### BEGIN SOLUTION
    model.eval()
    model_device = next(model.parameters()).device
    z_start, _ = model.encode(x_start.to(model_device))
    z_end, _ = model.encode(x_end.to(model_device))
    t = torch.linspace(0, 1, n_steps, device=model_device).unsqueeze(1)
    return model.decode(z_start + t * (z_end - z_start)).cpu()
    ### END SOLUTION


# %%
first_index, second_index = 0, 1  # try other pairs of test images
path = interpolate(bernoulli_vae, x_test[first_index:first_index + 1], x_test[second_index:second_index + 1])
show_images(path, title=f"from a {int(y_test[first_index])} to a {int(y_test[second_index])}")

# %% [markdown]
# ## 3. The 2-D code space of a VAE and of an autoencoder
#
# In notebook 1 the codes of a 2-D autoencoder formed long arms, one per digit, at arbitrary
# positions and scales, with empty space between them; decoding random codes mostly gave blurry
# shapes that were no digit. Here you train two `BernoulliVAE(2)` models with your
# `train_bernoulli` for 20 epochs (learning rate $10^{-3}$, a few seconds each):
#
# * a VAE with the KL term (`kl_weight=1e-3`), and
# * the same model with `kl_weight=0`: nothing pulls its codes towards the prior, so it is a plain
#   autoencoder (with some noise on its codes), like the one of notebook 1.
#
# Training both takes {{TIME.vae_2d}} on one CPU thread.
# The cells save them to `3_vae_2d_vae.pth` and `3_vae_2d_autoencoder.pth` (not graded: submit them
# if you like), scatter the code means of the test digits of both and decode the same random codes
# from $\mathcal N(0, I)$ with both. With `skip_training = True` they load the saved models, and
# skip a model whose file is missing.

# %% timed="vae_2d"
maps = {}
for name, kl_weight, filename in (("VAE", 1e-3, "3_vae_2d_vae.pth"), ("autoencoder", 0.0, "3_vae_2d_autoencoder.pth")):
    model_2d = BernoulliVAE(2)
    if not skip_training:
        torch.manual_seed(0)
        train_bernoulli(model_2d, n_epochs=20, lr=1e-3, kl_weight=kl_weight)
        save_model(model_2d, filename)
    else:
        try:
            load_model(model_2d, filename, device)
        except CheckpointError as error:
            print(f"The 2-D {name} is skipped (it is not graded): {error}")
            continue
    model_2d.to(device).eval()
    with torch.no_grad():
        maps[name] = (model_2d, model_2d.encode(x_test.to(device))[0].cpu())
    scatter_codes(maps[name][1], y_test, title=f"2-D code means of the test digits: {name}")

# %%
torch.manual_seed(4)
prior_codes = torch.randn(10, 2)
for name, (model_2d, codes) in maps.items():
    print(f"{name}: code means have mean {codes.mean(0).numpy().round(2)} and std {codes.std(0).numpy().round(2)}")
    with torch.no_grad():
        show_images(model_2d.decode(prior_codes.to(device)).cpu(), title=f"{name}: decoded codes from N(0, I)")

# %% [markdown]
# **Question.** Compare the two maps. Where do the codes of each model lie, relative to the prior
# $\mathcal N(0, I)$? Why do random codes from the prior decode to digits with the VAE but often not
# with the autoencoder? What does the KL term trade away to get this (look at the reconstructions and
# at how much the digit classes overlap in the VAE's map)?
#
# *Your answer here.*
