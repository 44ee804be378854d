# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Denoising autoencoders
#
# A *denoising* autoencoder (DAE) is trained on corrupted inputs $\tilde x$ and asked to give back the
# clean images $x$: it minimises $\frac1D \sum_d \big(g(\tilde x)_d - x_d\big)^2$. To undo the
# corruption it has to learn what images of the data set look like, and its bottleneck codes become
# useful features on the way.
#
# In this notebook you will
# 1. write `add_noise` and a training function, and train two denoisers of MNIST digits corrupted
#    with Gaussian noise: a small convolutional autoencoder, and the fully connected 784-128-32-128-784
#    autoencoder of the exercise this part follows;
# 2. build a DAE with a multiplicative gate for varianceMNIST, where a plain autoencoder cannot work,
#    and judge its codes with a classifier and a t-SNE map;
# 3. train a network that doubles the resolution of digits (14x14 to 28x28) and compare it with
#    classic interpolation;
# 4. see what the MNIST denoiser does with images unlike its training data (Fashion-MNIST), and
# 5. optionally, when CIFAR-10 is at hand, double and quadruple the resolution of colour photos.
#
# **How grading works.** Cells marked as tests check your code. Some checks are visible here; more
# are hidden and run when your notebook is graded. The hidden tests call your functions on small
# inputs, train your `DAE` and `SuperResolution` from scratch for a few hundred steps, and load the
# models you saved: `2_dae_denoiser.pth`, `2_dae_mlp.pth`, `2_dae_variance.pth` and
# `2_dae_superres.pth`. Grading never trains them for you, so submit those four files with the notebook.
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
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from aelib.checkpoints import load_model, save_model
from aelib.data import downsample, load_cifar10, load_fashion_mnist, load_mnist, minibatches, variance_mnist
from aelib.evaluation import classifier_accuracy, mse_per_pixel
from aelib.plotting import scatter_codes, show_images, show_signed_images
from aelib.training import pick_device, progress

device = pick_device(skip_training)
print("Using", device)

# %% [markdown]
# ## Data and two helpers
#
# `load_mnist(split)` returns images `(N, 1, 28, 28)` with values in $[0, 1]$ and their labels.
# The models of this notebook return either an image batch or, like the `DAE` below, a tuple
# `(codes, images)`. `output_images` picks the images out of either; `predict` runs a model on many
# inputs in batches, without gradients, and returns the output images on the CPU.

# %%
x_train, y_train = load_mnist("train")
x_test, y_test = load_mnist("test")
print("training images:", tuple(x_train.shape), " test images:", tuple(x_test.shape))


def output_images(output):
    """The image batch of a model's output: the output itself, or the last element of a tuple."""
    return output[-1] if isinstance(output, tuple) else output


@torch.no_grad()
def predict(model, inputs, batch_size=1000):
    """The output images of `model` for `inputs`, computed in batches without gradients, on the CPU."""
    model.eval()
    model_device = next(model.parameters()).device
    return torch.cat([output_images(model(inputs[i:i + batch_size].to(model_device))).cpu()
                      for i in range(0, len(inputs), batch_size)])


# %% [markdown]
# ## 1. Removing Gaussian noise from MNIST
#
# ### 1.1 Corrupting the images
#
# Write `add_noise(x, std=0.2)`: return a **new** tensor $\tilde x = x + n$ where every element of
# $n$ is drawn independently from $\mathcal N(0, \texttt{std}^2)$ and $n$ has the shape of `x`.
#
# * `std` is the **standard deviation** of the noise (not its variance);
# * draw new noise on every call (`torch.randn_like` helps); do not fix a seed inside the function;
# * do **not** clip the result to $[0, 1]$: the noisy values may go below 0 and above 1;
# * leave `x` itself unchanged (no in-place operations on it).
#
# With `std = 0.2` the noisy images differ from the clean ones by a mean squared error of
# $0.2^2 = 0.040$ per pixel. That is the number every denoiser below must beat.

# %% kind="solution" grade_id="add_noise"
def add_noise(x, std=0.2):
    """x plus independent Gaussian noise of standard deviation std (a new tensor, no clipping).

    Args:
        x: float tensor of any shape, typically a batch of images (B, 1, 28, 28); it is not modified.
        std: standard deviation of the noise (its square is the variance), a float.

    Returns:
        A new tensor with the shape, dtype and device of x: x plus noise drawn independently for every
        element from N(0, std ** 2), fresh on each call. Values are not clipped and may leave [0, 1].
    """
    ### BEGIN SOLUTION
    return x + std * torch.randn_like(x)
    ### END SOLUTION


# %% [markdown]
# The hidden test draws the noise for many images and checks that its mean is 0 and its variance
# `std ** 2` (within six standard errors, for the default and for other values of `std`), that
# neighbouring pixels and different images get independent noise, that two calls differ, and that
# `x` is left as it was.

# %% kind="tests" grade_id="test_add_noise" points=2
clean_batch = x_test[:8].clone()
noisy_batch = add_noise(clean_batch)
assert isinstance(noisy_batch, torch.Tensor), "add_noise should return a tensor"
assert noisy_batch.shape == clean_batch.shape, f"add_noise should keep the shape {tuple(clean_batch.shape)}, got {tuple(noisy_batch.shape)}"
assert torch.equal(clean_batch, x_test[:8]), "add_noise should not change its input"
noise_std = float((noisy_batch - clean_batch).std())
assert 0.17 < noise_std < 0.23, f"the noise should have standard deviation 0.2, got {noise_std:.3f}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_add_noise", grader.collect.dae.collect_add_noise, add_noise)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.2 A training function
#
# All three models of this notebook are trained the same way, so write one function for them:
# `train(model, make_batch, n_epochs, lr=1e-3, batch_size=64)`. For every epoch and every
# mini-batch of the clean training images (`minibatches(x_train, batch_size=batch_size)`):
#
# 1. `make_batch(batch)` returns the pair `(inputs, targets)` built from the clean batch (for the
#    denoiser: `(add_noise(batch), batch)`; fresh noise each time, so every epoch sees new noise);
# 2. the prediction is `output_images(model(inputs))`;
# 3. the loss is the mean squared error `F.mse_loss(prediction, targets)`;
# 4. take one Adam step (learning rate `lr`).
#
# Move the model and the data to `device`, put the model back in `eval()` mode at the end, and return
# the list of mean training losses per epoch. Show a progress bar over the epochs
# (`bar = progress(range(n_epochs))`) whose postfix gives, after every epoch, the mean training loss
# and a test loss: the same loss on `make_batch(x_test[:1000])`, computed without gradients, in
# `eval()` mode, and inside `with torch.random.fork_rng():` so that drawing its noise does not change
# the noise of the training batches (`bar.set_postfix(train=..., test=...)`).

# %% kind="solution" grade_id="train"
def train(model, make_batch, n_epochs, lr=1e-3, batch_size=64):
    """Train model to turn make_batch(clean)[0] into make_batch(clean)[1] by minimising the MSE.

    Args:
        model: a module whose output is an image batch or a tuple ending with one (see output_images);
            it is moved to `device`, trained in place and left in evaluation mode.
        make_batch: a function taking a clean batch (b, 1, 28, 28) of x_train on `device` (b is at most
            batch_size) and returning the pair (inputs, targets) of tensors; targets must have the
            shape of the model's output images.
        n_epochs: number of passes over x_train, an int.
        lr: learning rate of the Adam optimiser, a float.
        batch_size: number of clean images per mini-batch, an int.

    Returns:
        A list of n_epochs floats: the mean training MSE of each epoch.
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
            inputs, targets = make_batch(batch)
            loss = F.mse_loss(output_images(model(inputs)), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append(total / count)
        model.eval()
        with torch.no_grad(), torch.random.fork_rng():  # the test noise leaves the training noise as it was
            inputs, targets = make_batch(x_test[:1000].to(device))
            test = F.mse_loss(output_images(model(inputs)), targets).item()
        model.train()
        bar.set_postfix(train=f"{history[-1]:.4f}", test=f"{test:.4f}")
    model.eval()
    return history
    ### END SOLUTION


# %% [markdown]
# ### 1.3 A convolutional denoiser
#
# Write `Denoiser()`: `forward(x)` maps noisy images `(B, 1, 28, 28)` to denoised images of the same
# shape. A small convolutional autoencoder works well:
#
# * encoder: `Conv2d(1, 16, 3, stride=2, padding=1)` (to 14x14), ReLU,
#   `Conv2d(16, 32, 3, stride=2, padding=1)` (to 7x7), ReLU;
# * decoder: `ConvTranspose2d(32, 16, 4, stride=2, padding=1)` (to 14x14), ReLU,
#   `ConvTranspose2d(16, 1, 4, stride=2, padding=1)` (to 28x28), and a sigmoid, since clean pixels
#   lie in $[0, 1]$.
#
# Any other architecture is fine as long as it reaches the figures below.

# %% kind="solution" grade_id="denoiser"
class Denoiser(nn.Module):
    """Small convolutional autoencoder that removes additive noise from MNIST digits.

    The constructor takes no arguments.
    """

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )
        ### END SOLUTION

    def forward(self, x):
        """Denoised images (B, 1, 28, 28) for noisy images x (B, 1, 28, 28).

        Args:
            x: float tensor (B, 1, 28, 28) of noisy images; values may lie outside [0, 1].

        Returns:
            A float tensor (B, 1, 28, 28) of cleaned images with pixel values in [0, 1].
        """
        ### BEGIN SOLUTION
        return self.decoder(self.encoder(x))
        ### END SOLUTION


# %%
denoised_check = Denoiser()(x_test[:3])
assert tuple(denoised_check.shape) == (3, 1, 28, 28), f"Denoiser should return shape (3, 1, 28, 28), got {tuple(denoised_check.shape)}"
print("Denoiser returns the right shape.")

# %% [markdown]
# ### 1.4 Training and results
#
# The next cell trains a `Denoiser` for 5 epochs on noisy copies of `x_train` ({{TIME.denoiser}} on
# one CPU thread) and saves it to `2_dae_denoiser.pth`. Then it
# denoises a fixed noisy version of the test images, `x_test_noisy`.
#
# **What good looks like:** a test MSE against the clean images below {{DAE.denoiser_mse.threshold}}, far below the 0.040 of
# the noisy inputs themselves (a reference solution: about {{DAE.denoiser_mse.reference:.3f}}).

# %% timed="denoiser"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
denoiser = Denoiser()
if not skip_training:
    history = train(denoiser, lambda batch: (add_noise(batch), batch), n_epochs=5)
    print("training losses per epoch:", np.round(history, 4))
    save_model(denoiser, "2_dae_denoiser.pth")
else:
    load_model(denoiser, "2_dae_denoiser.pth", device)
denoiser.to(device).eval()

x_test_noisy = x_test + 0.2 * torch.randn(x_test.shape, generator=torch.Generator().manual_seed(0))
denoised_test = predict(denoiser, x_test_noisy)
noisy_mse, denoised_mse = mse_per_pixel(x_test_noisy, x_test), mse_per_pixel(denoised_test, x_test)
print(f"test MSE against the clean images: noisy inputs {noisy_mse:.4f}, denoised {denoised_mse:.4f}")
show_images(x_test_noisy[:10], title="noisy test images")
show_images(denoised_test[:10], title="denoised")
show_images(x_test[:10], title="clean")

# %% kind="tests" grade_id="test_denoiser_trained" points=2
# Hidden tests load 2_dae_denoiser.pth into Denoiser() and check its MSE on held-out images
# corrupted with fixed noise of their own (std 0.2): it should be below {{DAE.denoiser_mse.threshold}}.
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_denoiser_trained", grader.collect.dae.collect_denoiser_trained, Denoiser)
### END HIDDEN TESTS
assert denoised_mse < noisy_mse, "The denoised images are further from the clean ones than the noisy inputs: train the Denoiser"
print("Visible tests passed.")

# %% [markdown]
# ### 1.5 The fully connected denoising autoencoder
#
# The exercise this part follows uses one configuration for its compression, denoising and sparse
# autoencoders: fully connected layers 784-128-32-128-784 with a **sigmoid after every layer** (the
# 32-unit code too), the MSE loss, Adam with learning rate 0.01, batches of 256 and 50 epochs. Its
# denoiser is that network trained on `(add_noise(batch), batch)` pairs.
#
# Write `MLPDenoiser()`: `forward(x)` takes noisy images `(B, 1, 28, 28)` and returns the pair
# `(codes, denoised)`, codes of shape `(B, 32)` in $(0, 1)$ and denoised images `(B, 1, 28, 28)` in
# $(0, 1)$ (your `train` uses the images, the last element of the pair). It has 209,968 parameters.
#
# **What good looks like:** after the 50 epochs ({{TIME.mlp_denoiser}} on one CPU thread), a test MSE against the clean images
# below {{DAE.mlp_denoiser_mse.threshold}} (a reference solution: about {{DAE.mlp_denoiser_mse.reference:.3f}}). The 32-unit bottleneck
# keeps it behind the convolutional denoiser: compare the two below.

# %% kind="solution" grade_id="mlp_denoiser"
class MLPDenoiser(nn.Module):
    """The 784-128-32-128-784 autoencoder with a sigmoid after every linear layer, used as a denoiser.

    The constructor takes no arguments: the code always has 32 units.
    """

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.Sigmoid(),
                                     nn.Linear(128, 32), nn.Sigmoid())
        self.decoder = nn.Sequential(nn.Linear(32, 128), nn.Sigmoid(), nn.Linear(128, 784), nn.Sigmoid(),
                                     nn.Unflatten(1, (1, 28, 28)))
        ### END SOLUTION

    def forward(self, x):
        """The codes of noisy images x and the denoised images.

        Args:
            x: float tensor (B, 1, 28, 28) of noisy images; values may lie outside [0, 1].

        Returns:
            A tuple (codes, denoised): codes is a float tensor (B, 32) of sigmoid activations in (0, 1),
            and denoised a float tensor (B, 1, 28, 28) with values in (0, 1).
        """
        ### BEGIN SOLUTION
        codes = self.encoder(x)
        return codes, self.decoder(codes)
        ### END SOLUTION


# %% timed="mlp_denoiser"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
mlp_denoiser = MLPDenoiser()
if not skip_training:
    history = train(mlp_denoiser, lambda batch: (add_noise(batch), batch), n_epochs=50, lr=0.01, batch_size=256)
    print("training losses of the last 5 epochs:", np.round(history[-5:], 4))
    save_model(mlp_denoiser, "2_dae_mlp.pth")
else:
    load_model(mlp_denoiser, "2_dae_mlp.pth", device)
mlp_denoiser.to(device).eval()
mlp_denoised_test = predict(mlp_denoiser, x_test_noisy)
mlp_mse = mse_per_pixel(mlp_denoised_test, x_test)
print(f"test MSE against the clean images: noisy inputs {noisy_mse:.4f}, MLP denoiser {mlp_mse:.4f}, "
      f"convolutional denoiser {denoised_mse:.4f}")
show_images(torch.cat([x_test_noisy[:10], mlp_denoised_test[:10], denoised_test[:10]]), ncol=10,
            title="noisy (top), the MLP denoiser (middle), the convolutional denoiser (bottom)")

# %% kind="tests" grade_id="test_mlp_denoiser" points=2
# Hidden tests check the layers of MLPDenoiser(), load 2_dae_mlp.pth into it and check its MSE on held-out
# images corrupted with fixed noise of their own (std 0.2): it should be below {{DAE.mlp_denoiser_mse.threshold}}.
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_mlp_denoiser", grader.collect.dae.collect_mlp_denoiser, MLPDenoiser)
### END HIDDEN TESTS
assert mlp_mse < noisy_mse, "The MLP denoiser's outputs are further from the clean images than its inputs: train it"
print("Visible tests passed.")

# %% [markdown]
# ## 2. A denoising autoencoder for varianceMNIST
#
# In **varianceMNIST** (`variance_mnist(images)`) a pixel of intensity $p \in [0, 1]$ becomes
# $x = p\,\varepsilon$ with $\varepsilon \sim \mathcal N(0, 1)$ drawn anew every time: every pixel has
# mean 0 and variance $\sigma_x^2 = p^2$. The digit is only visible in *how much* the pixels vary,
# positive and negative alike, so the images below use a red-white-blue colour map centred on 0.
# `x_test_var` is one fixed varianceMNIST version of the test images.

# %%
x_test_var = variance_mnist(x_test, generator=torch.Generator().manual_seed(1))
show_images(x_test[:10], title="MNIST test images")
show_signed_images(x_test_var[:10], title="the same digits in varianceMNIST")
show_signed_images(variance_mnist(x_test[:10]), title="another draw of the same digits")

# %% [markdown]
# **Why a plain autoencoder fails here.** A plain autoencoder trained with the MSE to reproduce a
# varianceMNIST image must predict every pixel from its code. The sign and the exact value of each
# pixel are pure chance, fresh at every draw, so no code can tell them: the best prediction of a
# pixel is its mean, 0, and the autoencoder learns to output zeros (an MSE of
# $\overline{p^2} \approx 0.12$). The information is in the variances, and the model has to use its
# input differently.
#
# **The optimal denoiser.** Corrupt a varianceMNIST image with Gaussian noise: $\tilde x = x + n$,
# $n \sim \mathcal N(0, \sigma_n^2)$. Given the variance $\sigma_x^2 = p^2$ of a pixel, $x$ and $n$ are
# independent zero-mean Gaussians, so $x$ and $\tilde x$ are jointly Gaussian and the best estimate of
# $x$ in the mean-squared sense is
#
# $$\mathbb E[x \mid \tilde x] = \frac{\operatorname{Cov}(x, \tilde x)}{\operatorname{Var}(\tilde x)}\,\tilde x
#   = \frac{\sigma_x^2}{\sigma_x^2 + \sigma_n^2}\,\tilde x
#   = \tilde x \cdot \operatorname{sigmoid}\!\big(\log\sigma_x^2 - \log\sigma_n^2\big),$$
#
# since $\frac{a}{a + b} = \frac{1}{1 + b/a} = \operatorname{sigmoid}(\log a - \log b)$. So the optimal
# denoiser **multiplies its input** by a gate between 0 and 1: it keeps pixels that vary a lot
# (where the digit is) and silences the others. The gate depends on $\sigma_x^2$, which a single pixel
# cannot reveal, but the whole noisy image can: the digit shows in the sizes $|\tilde x|$ of all its
# pixels. Hence the form
#
# $$g(\tilde x) = \tilde x \odot \operatorname{sigmoid}\big(f(\tilde x)\big),$$
#
# where $f$ is an autoencoder that estimates the (log-)variances of all pixels from the whole image
# through its bottleneck code $z$.
#
# ### 2.1 The gated DAE
#
# Write `DAE(n_components=10)`. `forward(x)` takes noisy varianceMNIST images `x` of shape
# `(B, 1, 28, 28)` and returns the tuple `(z, denoised_x)`:
#
# * an encoder maps the *sizes* of the pixels, `x.abs()` (or `x ** 2`), to codes `z` of shape
#   `(B, n_components)`: the signs are noise, so drop them before the first layer;
# * a decoder maps `z` to `(B, 1, 28, 28)` values $f$, one per pixel (no activation at the end);
# * `denoised_x = x * torch.sigmoid(f)`: the gate multiplies the **input** `x`, signs included.
#
# An architecture that works well: encoder 784-250-250-`n_components` and decoder
# `n_components`-250-250-784, with ReLU between the linear layers. The hidden tests check the
# shapes, and they check the gate: for several random initialisations of your `DAE`, wherever a pixel
# of the input is exactly 0 its output must be exactly 0 too (a model that adds something to its input,
# or that decodes the image from $z$ alone, fails this).

# %% kind="solution" grade_id="dae"
class DAE(nn.Module):
    """Denoising autoencoder for varianceMNIST whose output is its input times a learned gate.

    Args:
        n_components: size of the bottleneck code z, an int.
    """

    def __init__(self, n_components=10):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 250), nn.ReLU(),
            nn.Linear(250, 250), nn.ReLU(),
            nn.Linear(250, n_components),
        )
        self.decoder = nn.Sequential(
            nn.Linear(n_components, 250), nn.ReLU(),
            nn.Linear(250, 250), nn.ReLU(),
            nn.Linear(250, 784),
            nn.Unflatten(1, (1, 28, 28)),
        )
        ### END SOLUTION

    def forward(self, x):
        """Encode the pixel sizes of x and denoise x by multiplying it with a per-pixel gate.

        Args:
            x: float tensor (B, 1, 28, 28) of noisy varianceMNIST images, real values of either sign.

        Returns:
            A tuple (z, denoised_x): z is a float tensor (B, n_components) of codes computed from the
            magnitudes of the pixels, and denoised_x a float tensor (B, 1, 28, 28) equal to x times a
            gate in (0, 1) decoded from z (so it is exactly 0 wherever x is 0).
        """
        ### BEGIN SOLUTION
        z = self.encoder(x.abs())
        return z, x * torch.sigmoid(self.decoder(z))
        ### END SOLUTION


# %% kind="tests" grade_id="test_dae" points=1
dae_output = DAE()(x_test_var[:4])
assert isinstance(dae_output, tuple) and len(dae_output) == 2, "forward should return the tuple (z, denoised_x)"
assert tuple(dae_output[0].shape) == (4, 10), f"z should have shape (4, 10) for DAE(), got {tuple(dae_output[0].shape)}"
assert tuple(dae_output[1].shape) == (4, 1, 28, 28), f"denoised_x should have shape (4, 1, 28, 28), got {tuple(dae_output[1].shape)}"
assert tuple(DAE(3)(x_test_var[:2])[0].shape) == (2, 3), "DAE(3) should give codes of shape (B, 3)"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_dae", grader.collect.dae.collect_dae, DAE)
### END HIDDEN TESTS

# %% kind="tests" grade_id="test_dae_gate" points=2
zero_image = torch.zeros(2, 1, 28, 28)
assert torch.all(DAE()(zero_image)[1] == 0), "An input of zeros should give an output of zeros: multiply the gate by the input x"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_dae_gate", grader.collect.dae.collect_dae_gate, DAE)
### END HIDDEN TESTS

# %% [markdown]
# Before the real training, a health check: the hidden test below trains a fresh `DAE(10)` for 300
# Adam steps on corrupted varianceMNIST images (noise std 0.2) and checks that its denoised test
# images are much closer to the clean varianceMNIST images than the noisy inputs are: a test MSE
# below {{DAE.brief_dae_mse.threshold}} (a reference solution: about {{DAE.brief_dae_mse.reference:.3f}}; the noisy inputs: 0.040).

# %% kind="tests" grade_id="test_dae_learns" points=1
print("This cell has hidden tests only.")
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_dae_learns", grader.collect.dae.collect_dae_learns, DAE)
### END HIDDEN TESTS

# %% [markdown]
# ### 2.2 Training
#
# The cell below trains a `DAE(10)` with your `train` function: each batch of clean digits is turned
# into varianceMNIST (the target $x$), then corrupted with `add_noise` (the input $\tilde x$). Keep the
# two random steps apart: the model must recover the varianceMNIST draw it was given, not the clean
# digit. 25 epochs take {{TIME.variance_dae}} on one CPU thread; the model is saved to `2_dae_variance.pth`.

# %% timed="variance_dae"
def variance_pair(batch):
    """(noisy input, clean target) for a batch of MNIST digits: varianceMNIST, then Gaussian noise."""
    target = variance_mnist(batch)
    return add_noise(target), target


torch.manual_seed(0)  # the same initial weights and mini-batches on every run
dae = DAE(10)
if not skip_training:
    history = train(dae, variance_pair, n_epochs=25)
    plt.plot(history)
    plt.xlabel("epoch")
    plt.ylabel("training MSE")
    plt.show()
    save_model(dae, "2_dae_variance.pth")
else:
    load_model(dae, "2_dae_variance.pth", device)
dae.to(device).eval()

# %% [markdown]
# ### 2.3 Denoised images and codes
#
# **What good looks like:** a test MSE below {{DAE.dae_mse.threshold}} against the clean varianceMNIST images (a
# reference solution: about {{DAE.dae_mse.reference:.3f}}; the noisy inputs: 0.040; the best a plain autoencoder can do, all
# zeros: about 0.12; the optimal gate, computed from the *true* intensities $p$, which the model never
# sees: about 0.0066). The gates $\operatorname{sigmoid}(f)$ should look like the digits.

# %%
x_test_var_noisy = x_test_var + 0.2 * torch.randn(x_test.shape, generator=torch.Generator().manual_seed(2))


@torch.no_grad()
def dae_outputs(images, batch_size=1000):
    """Codes z and denoised images of the DAE for `images`, on the CPU."""
    codes, denoised = [], []
    for i in range(0, len(images), batch_size):
        z, d = dae(images[i:i + batch_size].to(device))
        codes.append(z.cpu())
        denoised.append(d.cpu())
    return torch.cat(codes), torch.cat(denoised)


test_codes, test_denoised = dae_outputs(x_test_var_noisy)
optimal = x_test_var_noisy * x_test ** 2 / (x_test ** 2 + 0.2 ** 2)
print(f"test MSE against the clean varianceMNIST images: noisy {mse_per_pixel(x_test_var_noisy, x_test_var):.4f}, "
      f"DAE {mse_per_pixel(test_denoised, x_test_var):.4f}, all zeros {float((x_test_var ** 2).mean()):.4f}, "
      f"optimal gate with the true intensities {mse_per_pixel(optimal, x_test_var):.4f}")
gates = (test_denoised[:10] / x_test_var_noisy[:10]).clamp(0, 1)
show_signed_images(x_test_var_noisy[:10], title="noisy varianceMNIST inputs")
show_signed_images(test_denoised[:10], title="denoised by the DAE")
show_signed_images(x_test_var[:10], title="clean varianceMNIST targets")
show_images(gates, title="the gates denoised / input")

# %% [markdown]
# Now the codes. A logistic-regression classifier is trained on the codes $z$ of (noisy varianceMNIST
# versions of) the training images and tested on the codes of the test images. Labels were never used
# to train the DAE.
#
# **What good looks like:** an accuracy above {{DAE.dae_accuracy.threshold:.2f}} (a reference solution: about {{DAE.dae_accuracy.reference:.2f}} with the offline
# set of 8,000 training images; a published run of this task reached about 0.88 with all 60,000).

# %%
train_var_noisy = add_noise(variance_mnist(x_train, generator=torch.Generator().manual_seed(3)))
train_codes, _ = dae_outputs(train_var_noisy)
accuracy = classifier_accuracy(train_codes, y_train, test_codes, y_test)
print(f"logistic regression on the DAE codes: test accuracy {accuracy:.3f}")

# %% kind="tests" grade_id="test_dae_trained" points=2
# Hidden tests load 2_dae_variance.pth into DAE(10) and, on held-out varianceMNIST images with the
# tests' own fixed noise, check the denoising MSE (below {{DAE.dae_mse.threshold}}) and the accuracy of a
# logistic-regression classifier trained on the codes (above {{DAE.dae_accuracy.threshold:.2f}}).
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_dae_trained", grader.collect.dae.collect_dae_trained, DAE)
### END HIDDEN TESTS
assert accuracy > 0.3, "The codes hardly tell the digits apart: check your DAE and its training"
print("Visible tests passed.")

# %% [markdown]
# A t-SNE map of the codes of 1,000 test images (a few seconds), coloured by their digit.

# %%
from sklearn.manifold import TSNE

tsne_map = TSNE(n_components=2, init="pca", random_state=0).fit_transform(test_codes[:1000].numpy())
scatter_codes(torch.as_tensor(tsne_map), y_test[:1000], title="t-SNE of the DAE codes (varianceMNIST)")

# %% [markdown]
# ## 3. Super-resolution
#
# An autoencoder need not give back its own input. Here the input is a low-resolution digit,
# `downsample(x)` (2x2 average pooling, `(B, 1, 14, 14)`), and the target the full `(B, 1, 28, 28)`
# image. Classic interpolation (`F.interpolate`) knows nothing about digits; a trained network does.
#
# Write `SuperResolution()`: `forward(x)` maps `(B, 1, 14, 14)` to `(B, 1, 28, 28)`. A design that
# learns fast: start from the bicubic upsampling of the input,
# `F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)`, and **add** a learned
# correction computed by a small convolutional network from `x`: `Conv2d(1, 32, 3, padding=1)`, ReLU,
# `Conv2d(32, 32, 3, padding=1)`, ReLU, `ConvTranspose2d(32, 16, 4, stride=2, padding=1)` (to 28x28),
# ReLU, `Conv2d(16, 1, 3, padding=1)`. The network then only has to learn what interpolation misses.

# %% kind="solution" grade_id="super_resolution"
class SuperResolution(nn.Module):
    """Network that doubles the resolution of digits: bicubic upsampling plus a learned correction.

    The constructor takes no arguments.
    """

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        self.correction = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, 3, padding=1),
        )
        ### END SOLUTION

    def forward(self, x):
        """Images (B, 1, 28, 28) for low-resolution images x (B, 1, 14, 14).

        Args:
            x: float tensor (B, 1, 14, 14) of low-resolution digits in [0, 1], e.g. from downsample.

        Returns:
            A float tensor (B, 1, 28, 28): the estimated full-resolution images. Nothing forces the
            values into [0, 1], so a few may fall slightly outside it.
        """
        ### BEGIN SOLUTION
        upsampled = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        return upsampled + self.correction(x)
        ### END SOLUTION


# %% kind="tests" grade_id="test_super_resolution" points=1
upscaled = SuperResolution()(downsample(x_test[:3]))
assert tuple(upscaled.shape) == (3, 1, 28, 28), f"SuperResolution should return shape (3, 1, 28, 28), got {tuple(upscaled.shape)}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_super_resolution", grader.collect.dae.collect_super_resolution, SuperResolution)
### END HIDDEN TESTS

# %% [markdown]
# The hidden test below trains a fresh `SuperResolution()` for 200 Adam steps and checks that its
# test MSE is already below that of bicubic interpolation: below {{DAE.brief_superres_mse.threshold}} (bicubic: 0.0091; a
# reference solution: about {{DAE.brief_superres_mse.reference:.4f}}).

# %% kind="tests" grade_id="test_super_resolution_learns" points=1
print("This cell has hidden tests only.")
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_super_resolution_learns", grader.collect.dae.collect_super_resolution_learns, SuperResolution)
### END HIDDEN TESTS

# %% [markdown]
# ### 3.1 Training and comparison
#
# Three epochs take {{TIME.super_resolution}} on one CPU thread; the model is saved to `2_dae_superres.pth`.
# **What good looks like:** a test MSE below {{DAE.superres_mse.threshold}}, better than bicubic interpolation (about 0.0092);
# a reference solution reaches about {{DAE.superres_mse.reference:.4f}}.

# %% timed="super_resolution"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
super_resolution = SuperResolution()
if not skip_training:
    history = train(super_resolution, lambda batch: (downsample(batch), batch), n_epochs=3)
    print("training losses per epoch:", np.round(history, 5))
    save_model(super_resolution, "2_dae_superres.pth")
else:
    load_model(super_resolution, "2_dae_superres.pth", device)
super_resolution.to(device).eval()

x_test_small = downsample(x_test)
upscaled_test = {mode: F.interpolate(x_test_small, scale_factor=2, mode=mode) for mode in ("nearest", "bilinear", "bicubic")}
upscaled_test["SuperResolution"] = predict(super_resolution, x_test_small)
for method, images in upscaled_test.items():
    print(f"{method:>16}: test MSE {mse_per_pixel(images, x_test):.4f}")
show_images(F.interpolate(x_test_small[:10], scale_factor=2, mode="nearest"), title="14x14 inputs")
show_images(upscaled_test["bicubic"][:10].clamp(0, 1), title="bicubic")
show_images(upscaled_test["SuperResolution"][:10].clamp(0, 1), title="SuperResolution")
show_images(x_test[:10], title="28x28 originals")

# %% kind="tests" grade_id="test_super_resolution_trained" points=2
# Hidden tests load 2_dae_superres.pth into SuperResolution() and check its MSE on the held-out
# images: it should be below {{DAE.superres_mse.threshold}}, better than bicubic interpolation (0.0092).
### BEGIN HIDDEN TESTS
import grader.collect.dae
import grader.collect.common
grader.collect.common.store("test_super_resolution_trained", grader.collect.dae.collect_super_resolution_trained, SuperResolution)
### END HIDDEN TESTS
assert mse_per_pixel(upscaled_test["SuperResolution"], x_test) < mse_per_pixel(upscaled_test["nearest"], x_test), (
    "SuperResolution does worse than repeating every pixel: train it")
print("Visible tests passed.")

# %% [markdown]
# ## 4. Out of distribution
#
# The denoiser of part 1 learned what *MNIST digits* look like, not what images in general look like.
# Give it noisy versions (std 0.2) of images unlike anything it was trained on. The natural test is
# **Fashion-MNIST**: 28x28 grey photos of clothes, in the same file format as MNIST. `load_fashion_mnist`
# reads its files from `FashionMNIST/raw/` in your data folder (downloading them when you are online).
# If they cannot be had, the cell says so and uses images made from the test digits instead: rotated by
# 90 degrees, inverted (white background), shifted by 8 pixels, and faint (intensities halved). For each
# kind of image it prints the MSE of the noisy input and of the denoised output against the clean image.

# %%
try:
    fashion, _ = load_fashion_mnist("test")
    strange = {"Fashion-MNIST": fashion[:1000]}
except FileNotFoundError as error:
    print(f"Fashion-MNIST is not available, so the denoiser is tried on altered digits instead.\n{error}")
    strange = {
        "rotated": torch.rot90(x_test[:1000], 1, dims=(2, 3)),
        "inverted": 1 - x_test[:1000],
        "shifted": torch.roll(x_test[:1000], shifts=(8, 8), dims=(2, 3)),
        "faint": 0.5 * x_test[:1000],
    }
noise = 0.2 * torch.randn(1000, 1, 28, 28, generator=torch.Generator().manual_seed(4))
for name, images in strange.items():
    noisy = images + noise
    cleaned = predict(denoiser, noisy)
    print(f"{name:>13}: noisy input {mse_per_pixel(noisy, images):.4f}, denoised {mse_per_pixel(cleaned, images):.4f}")
    show_images(torch.cat([images[:5], noisy[:5], cleaned[:5]]), ncol=5,
                title=f"{name}: clean (top), noisy, denoised (bottom)")

# %% [markdown]
# **Question.** Which of these images does the denoiser still clean up, and which does it ruin? Look
# at the outputs: what does it turn the inputs into? What does this say about what a denoising
# autoencoder learns, and about using one on data from a different distribution?
#
# *Your answer here.*

# %% [markdown]
# ## 5. Optional: super-resolution of colour photos (CIFAR-10, not graded)
#
# The exercise this notebook follows also asks for super-resolution on CIFAR-10, 32x32 colour photos of
# ten kinds of objects. This part runs only when CIFAR-10 is in your data folder: download the binary
# version, `cifar-10-binary.tar.gz` (about 160 MB), from https://www.cs.toronto.edu/~kriz/cifar.html and put
# it in the data folder (`load_cifar10` unpacks it into `cifar-10-batches-bin/`). It is not graded and
# trains for a few minutes on a CPU.
#
# Two models with the design of your `SuperResolution`, a bicubic upsampling plus a learned convolutional
# correction, now for three channels: one doubles the resolution (16x16 to 32x32), the other quadruples
# it (8x8 to 32x32). Questions to explore: how much better than bicubic is each? What does the 4x model
# draw when you feed it pure noise instead of a small photo?

# %%
class ColourSuperResolution(nn.Module):
    """Bicubic upsampling by `factor` plus a learned correction, for (B, 3, H, W) colour images."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor
        self.refine = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 3, 3, padding=1),
        )

    def forward(self, x):
        upsampled = F.interpolate(x, scale_factor=self.factor, mode="bicubic", align_corners=False)
        return upsampled + self.refine(upsampled)


CIFAR_EPOCHS = 3
if skip_training:
    print("CIFAR-10 super-resolution is skipped while skip_training is True (it is not graded).")
else:
    try:
        cifar_train, _ = load_cifar10("train")
        cifar_test, _ = load_cifar10("test")
    except FileNotFoundError as error:
        print(f"CIFAR-10 super-resolution is skipped.\n{error}")
    else:
        cifar_test = cifar_test[:1000]
        for factor in (2, 4):
            torch.manual_seed(0)
            model = ColourSuperResolution(factor).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            bar = progress(range(CIFAR_EPOCHS), desc=f"{factor}x")
            for epoch in bar:
                model.train()
                for batch in minibatches(cifar_train, batch_size=64):
                    batch = batch.to(device)
                    loss = F.mse_loss(model(F.avg_pool2d(batch, factor)), batch)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                small_test = F.avg_pool2d(cifar_test, factor)
                test = mse_per_pixel(predict(model, small_test), cifar_test)
                bar.set_postfix(train=f"{loss.item():.4f}", test=f"{test:.4f}")
            bicubic = F.interpolate(small_test, scale_factor=factor, mode="bicubic", align_corners=False)
            print(f"{factor}x: test MSE bicubic {mse_per_pixel(bicubic, cifar_test):.4f}, learned {test:.4f}")
            show_images(torch.cat([cifar_test[:8], bicubic[:8], predict(model, small_test[:8])]), ncol=8,
                        title=f"{factor}x: originals (top), bicubic, learned (bottom)")
        noise_inputs = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(5))
        show_images(torch.cat([F.interpolate(noise_inputs, scale_factor=4), predict(model, noise_inputs)]), ncol=8,
                    title="pure noise into the 4x model: inputs (top), outputs (bottom)")
