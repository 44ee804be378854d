# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Bottleneck autoencoders
#
# An autoencoder learns a *code* $z = f(x)$ of an image $x$ from which a decoder can rebuild the
# image, $\hat x = g(z)$, by minimising a reconstruction loss such as the mean squared error
# $\frac{1}{D}\sum_d (x_d - \hat x_d)^2$. No labels are used. When the code is much smaller than the
# image (a *bottleneck*), the network has to keep what matters most about the digit.
#
# In this notebook you will
# 1. write `sample_train` to draw random training images,
# 2. build an `Encoder`, a `Decoder` and an `Autoencoder`,
# 3. train a 10-dimensional autoencoder,
# 4. judge its codes with a classifier and a t-SNE map,
# 5. build the classic compression autoencoder 784-128-32-128-784,
# 6. train a 2-D autoencoder for 50,000 steps, look at its code space and try to generate digits from it,
# 7. build encoders and decoders with `make_encoder` / `make_decoder` and compare code sizes, and
# 8. train a sparse autoencoder.
#
# **How grading works.** Cells marked as tests check your code. Some checks are visible here; more
# are hidden and run when your notebook is graded. The hidden tests call your functions on small
# inputs, train a fresh `Autoencoder(10)` of yours for a few hundred steps with their own
# mean-squared-error loss (seconds on a CPU), and load the models you saved: `1_ae_encoder.pth`,
# `1_ae_decoder.pth`, `1_ae_compression.pth` and `1_ae_sparse.pth`. Grading never trains those saved
# models for you, so submit the four files with the notebook (`1_ae_2d.pth` too if you like; it is not
# graded).
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

from aelib.checkpoints import CheckpointError, load_model, save_model
from aelib.data import load_mnist, minibatches
from aelib.evaluation import classifier_accuracy, encode, mse_per_pixel
from aelib.plotting import scatter_codes, show_images
from aelib.training import pick_device, progress

device = pick_device(skip_training)
print("Using", device)

# %% [markdown]
# ## Data
#
# `load_mnist(split)` returns the whole split as two tensors: images of shape `(N, 1, 28, 28)` with
# values in $[0, 1]$ and labels of shape `(N,)`. Keeping the data in one tensor and slicing
# mini-batches from it (see `minibatches`) is much faster than reading images one by one.
#
# The files are looked for in the folder given by the environment variable `AUTOENCODERS_DATA_DIR`,
# else in `/coursedata`, else in `data/` next to this notebook, and downloaded there if missing and
# you are online.
#
# **Offline mode.** With the environment variable `AUTOENCODERS_OFFLINE_SPLIT=1` (the course's own
# tests use it) only the official 10,000 test images are read: the first 8,000 become the training
# set and the last 2,000 the test set. Everything works the same, with differences you may notice:
# training takes about an eighth of the time quoted below; a random draw of more than 8,000 training
# images, such as `sample_train(10000)` in part 6, returns all 8,000 (drawing without replacement
# cannot give more); and the code sizes of part 7 are compared after training on fewer images, so
# that curve is noisier (neighbouring sizes can swap places).

# %%
x_train, y_train = load_mnist("train")
x_test, y_test = load_mnist("test")
print("training images:", tuple(x_train.shape), " test images:", tuple(x_test.shape))
show_images(x_train[:10], title="The first ten training images")

# %% [markdown]
# ## 1. Sampling training images
#
# Write `sample_train(N, return_labels=False)`. It returns `N` images drawn at random from
# `x_train`, a tensor of shape `(N, 1, 28, 28)`. With `return_labels=True` it returns the tuple
# `(images, labels)`, where `labels` (shape `(N,)`) are the labels of exactly those images.
# Every call draws anew.

# %% kind="solution" grade_id="sample_train"
def sample_train(N, return_labels=False):
    """Draw N random training images, and their labels when return_labels is True.

    Args:
        N: how many images to draw, an int. Each call makes a new random choice.
        return_labels: when True, the labels of the drawn images are returned as well.

    Returns:
        A float tensor (N, 1, 28, 28) of images taken from x_train, pixel values in [0, 1]. With
        return_labels=True, the pair (images, labels) instead, where labels is an int64 tensor (N,)
        holding the digit class of each returned image, in the same order.
    """
    ### BEGIN SOLUTION
    index = torch.randperm(len(x_train))[:N]
    if return_labels:
        return x_train[index], y_train[index]
    return x_train[index]
    ### END SOLUTION


# %% kind="tests" grade_id="test_sample_train" points=1
images, labels = sample_train(8, return_labels=True)
assert tuple(images.shape) == (8, 1, 28, 28), f"images should have shape (8, 1, 28, 28), got {tuple(images.shape)}"
assert tuple(labels.shape) == (8,), f"labels should have shape (8,), got {tuple(labels.shape)}"
assert tuple(sample_train(3).shape) == (3, 1, 28, 28), "sample_train(3) should return only the images"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_sample_train", grader.collect.ae.collect_sample_train, sample_train)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Encoder, decoder and autoencoder
#
# * `Encoder(n_components)`: `forward(x)` maps images `(B, 1, 28, 28)` to codes `(B, n_components)`.
# * `Decoder(n_components)`: `forward(z)` maps codes `(B, n_components)` back to images
#   `(B, 1, 28, 28)` with values in $[0, 1]$ (end with a sigmoid).
#
# Multi-layer perceptrons work well: flatten the image to 784 numbers, use one or two hidden layers
# of a few hundred ReLU units, and a linear layer to the code. The decoder mirrors the encoder.
# `nn.Flatten` and `nn.Unflatten` help with the reshaping.

# %% kind="solution" grade_id="encoder_decoder"
class Encoder(nn.Module):
    """Fully connected network that turns MNIST images into short real-valued codes.

    Args:
        n_components: length of the code produced for every image, an int.
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 64), nn.ReLU(),
            nn.Linear(64, n_components),
        )
        ### END SOLUTION

    def forward(self, x):
        """Compute the codes of a batch of images.

        Args:
            x: float tensor (B, 1, 28, 28) of images with pixel values in [0, 1].

        Returns:
            A float tensor (B, n_components): one unbounded real-valued code per image.
        """
        ### BEGIN SOLUTION
        return self.layers(x)
        ### END SOLUTION


class Decoder(nn.Module):
    """Fully connected network that turns codes back into MNIST-sized images.

    Args:
        n_components: length of the codes it accepts, an int (the same as the matching Encoder).
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.Sequential(
            nn.Linear(n_components, 64), nn.ReLU(),
            nn.Linear(64, 256), nn.ReLU(),
            nn.Linear(256, 784), nn.Sigmoid(),
            nn.Unflatten(1, (1, 28, 28)),
        )
        ### END SOLUTION

    def forward(self, z):
        """Decode a batch of codes into images.

        Args:
            z: float tensor (B, n_components) of codes.

        Returns:
            A float tensor (B, 1, 28, 28) of images whose pixel values lie in [0, 1] (sigmoid outputs).
        """
        ### BEGIN SOLUTION
        return self.layers(z)
        ### END SOLUTION


# %% kind="tests" grade_id="test_encoder_decoder" points=2
z = Encoder(10)(torch.rand(4, 1, 28, 28))
assert tuple(z.shape) == (4, 10), f"Encoder(10) should return codes of shape (4, 10), got {tuple(z.shape)}"
y = Decoder(10)(torch.randn(4, 10))
assert tuple(y.shape) == (4, 1, 28, 28), f"Decoder(10) should return shape (4, 1, 28, 28), got {tuple(y.shape)}"
assert y.min() >= 0 and y.max() <= 1, "Decoder outputs should lie in [0, 1]"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_encoder_decoder", grader.collect.ae.collect_encoder_decoder, Encoder, Decoder)
### END HIDDEN TESTS

# %% [markdown]
# `Autoencoder(n_components)` joins the two: it has the submodules `self.encoder` and
# `self.decoder`, and `forward(x)` returns the tuple `(codes, reconstructions)`.
#
# **Good:** the hidden test trains a fresh `Autoencoder(10)` of yours for 400 Adam steps (learning
# rate $10^{-3}$, batches of 64, the MSE loss); its test MSE per pixel should then be below
# {{AE.brief_training_mse.threshold}} (a reference solution: about {{AE.brief_training_mse.reference:.3f}}; a decoder that ignores its
# codes cannot beat the mean image, 0.067).

# %% kind="solution" grade_id="autoencoder"
class Autoencoder(nn.Module):
    """An Encoder followed by a Decoder: images are squeezed into codes and rebuilt from them.

    Args:
        n_components: size of the bottleneck code, an int, shared by the encoder and the decoder.

    Attributes:
        encoder: the Encoder(n_components) submodule.
        decoder: the Decoder(n_components) submodule.
    """

    def __init__(self, n_components):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = Encoder(n_components)
        self.decoder = Decoder(n_components)
        ### END SOLUTION

    def forward(self, x):
        """Encode a batch of images and reconstruct it from the codes.

        Args:
            x: float tensor (B, 1, 28, 28) of images with pixel values in [0, 1].

        Returns:
            A tuple (codes, reconstructions): codes is a float tensor (B, n_components), and
            reconstructions a float tensor (B, 1, 28, 28) with values in [0, 1].
        """
        ### BEGIN SOLUTION
        codes = self.encoder(x)
        return codes, self.decoder(codes)
        ### END SOLUTION


# %% kind="tests" grade_id="test_autoencoder" points=2
codes, reconstructions = Autoencoder(10)(torch.rand(5, 1, 28, 28))
assert tuple(codes.shape) == (5, 10), f"codes should have shape (5, 10), got {tuple(codes.shape)}"
assert tuple(reconstructions.shape) == (5, 1, 28, 28), "reconstructions should have shape (5, 1, 28, 28)"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_autoencoder", grader.collect.ae.collect_autoencoder, Autoencoder)
### END HIDDEN TESTS

# %% [markdown]
# Write `plot(model, samples)`: it shows each image of `samples` (a batch `(B, 1, 28, 28)`, B may
# be 1) next to its reconstruction by `model` (an `Autoencoder`), originals in the top row and
# reconstructions below. `show_images` can do the drawing.

# %% kind="solution" grade_id="plot"
def plot(model, samples):
    """Show samples (top row) and their reconstructions by model (bottom row).

    Args:
        model: an autoencoder whose forward returns (codes, reconstructions), such as Autoencoder or
            CompressionAutoencoder; it may live on any device.
        samples: float tensor (B, 1, 28, 28) of images in [0, 1], with B >= 1, on any device.

    Returns:
        None. The figure, two rows of B images, is drawn as a side effect.
    """
    ### BEGIN SOLUTION
    model.eval()
    with torch.no_grad():
        _, reconstructions = model(samples.to(next(model.parameters()).device))
    both = torch.cat([samples.cpu(), reconstructions.cpu()])
    show_images(both, ncol=len(samples), title="originals (top) and reconstructions (bottom)")
    ### END SOLUTION


# %% [markdown]
# ## 3. Train a 10-dimensional autoencoder
#
# Write a training loop for an `Autoencoder(10)`: mini-batches of 64 images from `x_train`
# (`minibatches(x_train, batch_size=64)` yields them in a random order), the loss
# `F.mse_loss(reconstructions, images)`, and Adam with learning rate `1e-3`. About 10 epochs are
# enough ({{TIME.ae10}} on one CPU thread). Train on `device`, and show a progress bar over the epochs (`bar = progress(range(n_epochs))`)
# whose postfix gives, after every epoch, the mean training loss and the test MSE per pixel
# (`bar.set_postfix(train=..., test=test_mse(model))`; `test_mse`, below your function, puts the model
# in `eval()` mode, so switch it back with `model.train()`).
#
# **What good looks like:** the test MSE per pixel falls below {{AE.ae10_mse.threshold}} (PCA with 10 components
# reaches 0.036; predicting the mean image gives 0.067). A reference solution reaches about
# {{AE.ae10_mse.reference:.3f}}.
#
# The cell then saves the encoder and the decoder to `1_ae_encoder.pth` and `1_ae_decoder.pth`.
# You will reuse the loop below, so write it as a function `train(model, n_epochs, lr, batch_size,
# penalty=None)` that returns the list of mean training losses per epoch. `penalty` (used in part
# 8) is either None or a function of the codes whose value is added to the loss.

# %% kind="solution" grade_id="train_function"
def train(model, n_epochs, lr, batch_size, penalty=None):
    """Train an autoencoder on x_train with the MSE loss (plus penalty(codes) if given).

    Args:
        model: an autoencoder whose forward maps images (B, 1, 28, 28) to (codes, reconstructions);
            it is moved to `device` and its parameters are updated in place.
        n_epochs: number of passes over x_train, an int.
        lr: learning rate of the Adam optimiser, a float.
        batch_size: number of images in each mini-batch, an int.
        penalty: None, or a function taking the codes (batch_size, n_components) of a mini-batch and
            returning a scalar tensor that is added to the reconstruction loss.

    Returns:
        A list of n_epochs floats: for each epoch, the training loss (MSE plus penalty, if any)
        averaged over the images of that epoch.
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
            codes, reconstructions = model(batch)
            loss = F.mse_loss(reconstructions, batch)
            if penalty is not None:
                loss = loss + penalty(codes)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append(total / count)
        bar.set_postfix(train=f"{history[-1]:.4f}", test=f"{test_mse(model):.4f}")
        model.train()
    model.eval()
    return history
    ### END SOLUTION


def test_mse(model):
    """Per-pixel MSE of model's reconstructions of the test images.

    Args:
        model: an autoencoder on `device` whose forward returns (codes, reconstructions); it is put in
            evaluation mode.

    Returns:
        A Python float: the squared error between x_test and its reconstructions, averaged over all
        pixels of all test images.
    """
    model.eval()
    with torch.no_grad():
        _, reconstructions = model(x_test.to(device))
    return mse_per_pixel(reconstructions.cpu(), x_test)


# %% timed="ae10"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
ae10 = Autoencoder(10)
if not skip_training:
    history = train(ae10, n_epochs=10, lr=1e-3, batch_size=64)
    print("last training loss:", round(history[-1], 4))
    save_model(ae10.encoder, "1_ae_encoder.pth")
    save_model(ae10.decoder, "1_ae_decoder.pth")
else:
    load_model(ae10.encoder, "1_ae_encoder.pth", device)
    load_model(ae10.decoder, "1_ae_decoder.pth", device)
ae10.to(device)
print(f"test MSE per pixel: {test_mse(ae10):.4f}")
plot(ae10, x_test[:10])

# %% kind="tests" grade_id="test_reconstruction" points=2
# Hidden tests load 1_ae_encoder.pth and 1_ae_decoder.pth into Encoder(10) and Decoder(10) and check
# the per-pixel MSE on held-out images (below {{AE.ae10_mse.threshold}}).
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_reconstruction", grader.collect.ae.collect_trained_codes, Encoder, Decoder)
### END HIDDEN TESTS
with torch.no_grad():
    mse = mse_per_pixel(ae10.decoder(ae10.encoder(x_test.to(device))).cpu(), x_test)
assert mse < 0.067, f"Your autoencoder (MSE {mse:.4f}) does worse than predicting the mean image: train it longer"
print("Visible tests passed.")

# %% [markdown]
# ## 4. How good are the codes?
#
# Labels were not used in training, yet similar digits should get similar codes. Two ways to see it:
#
# * Train a logistic-regression classifier on the codes of training images and measure its accuracy
#   on the codes of test images (`classifier_accuracy` does this). **Good:** above {{AE.ae10_accuracy.threshold:.2f}}; a reference
#   solution reaches about {{AE.ae10_accuracy.reference:.2f}}, and raw pixels give about 0.92.
# * Map the 10-D codes of 1,000 test images to 2-D with t-SNE and colour them by label.

# %%
train_codes = encode(ae10.encoder, x_train[:10000])
test_codes = encode(ae10.encoder, x_test)
accuracy = classifier_accuracy(train_codes, y_train[:10000], test_codes, y_test)
print(f"logistic regression on the codes: test accuracy {accuracy:.3f}")

# %%
from sklearn.manifold import TSNE

tsne_map = TSNE(n_components=2, init="pca", random_state=0).fit_transform(test_codes[:1000].numpy())
scatter_codes(torch.as_tensor(tsne_map), y_test[:1000], title="t-SNE of the 10-D codes")

# %% kind="tests" grade_id="test_classifier" points=2
# Hidden tests train a logistic-regression classifier on the codes of your saved encoder and check
# its accuracy on held-out images (above {{AE.ae10_accuracy.threshold:.2f}}).
assert accuracy > 0.5, "The codes hardly tell the digits apart: check your encoder and training"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_classifier", grader.collect.ae.collect_trained_codes, Encoder, Decoder)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The compression autoencoder 784-128-32-128-784
#
# A classic configuration: four fully connected layers, 784 inputs, 128 hidden units, a 32-unit
# code, 128 hidden units and 784 outputs, with a **sigmoid after every layer** (the code too).
# Write `CompressionAutoencoder()`; like `Autoencoder`, its `forward(x)` takes `(B, 1, 28, 28)` and
# returns `(codes, reconstructions)` with codes of shape `(B, 32)`. It has 209,968 parameters.
#
# Train it with the MSE loss, Adam with learning rate 0.01 and batches of 256 for 50 epochs (the
# cell below does it with your `train`, in {{TIME.compression}} on one CPU thread). **Good:** a test MSE per pixel below {{AE.compression_mse.threshold}} (a reference solution
# reaches about {{AE.compression_mse.reference:.3f}}).

# %% kind="solution" grade_id="compression"
class CompressionAutoencoder(nn.Module):
    """The classic 784-128-32-128-784 autoencoder with a sigmoid after every linear layer.

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
        """The 32-D codes of x and its reconstructions.

        Args:
            x: float tensor (B, 1, 28, 28) of images with pixel values in [0, 1].

        Returns:
            A tuple (codes, reconstructions): codes is a float tensor (B, 32) of sigmoid activations
            in (0, 1), and reconstructions a float tensor (B, 1, 28, 28) with values in (0, 1).
        """
        ### BEGIN SOLUTION
        codes = self.encoder(x)
        return codes, self.decoder(codes)
        ### END SOLUTION


# %% kind="tests" grade_id="test_compression" points=1
codes, reconstructions = CompressionAutoencoder()(torch.rand(2, 1, 28, 28))
assert tuple(codes.shape) == (2, 32) and tuple(reconstructions.shape) == (2, 1, 28, 28), "check the shapes"
n_parameters = sum(p.numel() for p in CompressionAutoencoder().parameters())
assert n_parameters == 209968, f"CompressionAutoencoder should have 209968 parameters, got {n_parameters}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_compression", grader.collect.ae.collect_compression, CompressionAutoencoder)
### END HIDDEN TESTS

# %% timed="compression"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
compression_ae = CompressionAutoencoder()
if not skip_training:
    train(compression_ae, n_epochs=50, lr=0.01, batch_size=256)
    save_model(compression_ae, "1_ae_compression.pth")
else:
    load_model(compression_ae, "1_ae_compression.pth", device)
compression_ae.to(device)
print(f"test MSE per pixel: {test_mse(compression_ae):.4f}")
plot(compression_ae, x_test[:10])

# %% kind="tests" grade_id="test_compression_trained" points=1
# Hidden tests load 1_ae_compression.pth and check the per-pixel MSE on held-out images (below {{AE.compression_mse.threshold}}).
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_compression_trained", grader.collect.ae.collect_trained_compression, CompressionAutoencoder)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. A 2-D code space
#
# With only two code units the codes can be drawn directly. This part follows the exercise it comes
# from: an `Autoencoder(2)` trained for **50,000 steps**, each on a fresh batch of **200** images from
# `sample_train`, with the MSE loss and Adam (learning rate 1e-3).
#
# Write `train_steps(model, n_steps, lr=1e-3, batch_size=200, show_every=10_000)`: one Adam step per
# batch `sample_train(batch_size)`, a progress bar over the steps (`bar = progress(range(n_steps))`)
# whose postfix shows, every 100 steps, the mean loss of the last 100 steps and the latest test MSE
# (`test_mse(model)`, computed every 1,000 steps; `bar.set_postfix(train=..., test=...)`), and every `show_every`
# steps a look at how it is doing: your `plot` on a batch of a single training image (from
# `sample_train`) draws it beside its reconstruction. Return the list of losses of every step and leave the model in `eval()` mode.
#
# 50,000 steps take {{TIME.ae2d}} on one CPU thread (about a minute on a GPU). `AE2D_STEPS`
# below holds the exercise's number; if you are short of time, 10,000 steps already give a readable
# map, but say so when you discuss it. The 2-D model is not graded; `1_ae_2d.pth` is optional.

# %% kind="solution" grade_id="train_steps"
def train_steps(model, n_steps, lr=1e-3, batch_size=200, show_every=10_000):
    """Train an autoencoder for n_steps Adam steps on fresh batches from sample_train, with the MSE loss.

    Args:
        model: an autoencoder whose forward maps images (B, 1, 28, 28) to (codes, reconstructions); it is
            moved to `device`, trained in place and left in evaluation mode.
        n_steps: number of optimisation steps, an int; every step draws a new batch.
        lr: learning rate of the Adam optimiser, a float.
        batch_size: number of images per step, an int.
        show_every: every this many steps, plot one training image beside its reconstruction.

    Returns:
        A list of n_steps floats: the MSE of every step's batch.
    """
    ### BEGIN SOLUTION
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    bar = progress(range(1, n_steps + 1), desc="steps")
    for step in bar:
        batch = sample_train(batch_size).to(device)
        loss = F.mse_loss(model(batch)[1], batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 1000 == 0 or step == 100:
            test = test_mse(model)
            model.train()
        if step % 100 == 0:
            bar.set_postfix(train=f"{np.mean(losses[-100:]):.4f}", test=f"{test:.4f}")
        if step % show_every == 0:
            plot(model, sample_train(1))
            model.train()
    model.eval()
    return losses
    ### END SOLUTION


# %% timed="ae2d"
AE2D_STEPS = 50_000  # the exercise's setting

torch.manual_seed(0)  # the same initial weights and batches on every run
ae2 = Autoencoder(2)
have_ae2 = True
if not skip_training:
    losses_2d = train_steps(ae2, AE2D_STEPS, show_every=max(AE2D_STEPS // 5, 1))
    print(f"mean loss of the last 1,000 steps: {np.mean(losses_2d[-1000:]):.4f}")
    save_model(ae2, "1_ae_2d.pth")
else:
    try:
        load_model(ae2, "1_ae_2d.pth", device)
    except CheckpointError as error:
        have_ae2 = False
        print(f"The 2-D code space is skipped (it is not graded): {error}")

# %% [markdown]
# Now encode a batch of 10,000 labelled training images, `sample_train(10000, return_labels=True)`
# (the offline test set has only 8,000 training images, so you get all of them there), and scatter the
# codes in the $(z_1, z_2)$ plane, coloured by label. Then decode two kinds of codes:
# * a code you pick by hand from the region where the 4s lie (here: the mean code of the 4s), and
# * random codes drawn from a wide Gaussian around the origin.

# %%
if have_ae2:
    ae2.to(device)
    images_2d, labels_2d = sample_train(10000, return_labels=True)
    codes_2d = encode(ae2.encoder, images_2d)
    scatter_codes(codes_2d, labels_2d, title=f"2-D codes of {len(images_2d):,} training images")

# %%
if have_ae2:
    picked = codes_2d[labels_2d == 4].mean(dim=0, keepdim=True)
    torch.manual_seed(1)
    random_codes = 3 * codes_2d.std() * torch.randn(9, 2)
    with torch.no_grad():
        decoded = ae2.decoder(torch.cat([picked, random_codes]).to(device)).cpu()
    print("picked code for a 4:", picked.numpy().round(2))
    show_images(decoded, title="decoded: the picked '4' code, then nine random codes")

# %% [markdown]
# **Question.** Why do most random codes decode to blurry shapes that are no digit, and what would
# the code space need so that sampling a code gives a plausible digit? (Variational autoencoders, in
# notebook 3, shape the code distribution to a known prior for exactly this reason.)
#
# *Your answer here.*

# %% [markdown]
# ## 7. How large should the code be?
#
# Another exercise builds its encoders and decoders with two small functions instead of classes.
# Write them:
#
# * `make_encoder(DIM)` returns an `nn.Sequential`: flatten the image, `Linear(784, 100)`, ReLU,
#   `Linear(100, DIM)`, and a **Tanh**, so every code unit lies in $(-1, 1)$. Input `(B, 1, 28, 28)`,
#   output `(B, DIM)`.
# * `make_decoder(DIM)` returns the mirror image: `Linear(DIM, 100)`, ReLU, `Linear(100, 784)`, a
#   sigmoid, and `nn.Unflatten(1, (1, 28, 28))`. Input `(B, DIM)`, output `(B, 1, 28, 28)` in $[0, 1]$.
#
# With `DIM = 100` the encoder has 78,500 + 10,100 = 88,600 parameters and the decoder 10,100 + 79,184 =
# 89,284. Hidden tests check both builders for several code sizes: layer shapes, output shapes and
# ranges, and that the code saturates like a Tanh for large inputs.

# %% kind="solution" grade_id="builders"
def make_encoder(DIM):
    """A small fully connected encoder with a Tanh code.

    Args:
        DIM: length of the code, an int.

    Returns:
        An nn.Module mapping images (B, 1, 28, 28) to codes (B, DIM) with values in (-1, 1):
        784 -> 100 (ReLU) -> DIM (Tanh).
    """
    ### BEGIN SOLUTION
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, DIM), nn.Tanh())
    ### END SOLUTION


def make_decoder(DIM):
    """The decoder matching make_encoder(DIM).

    Args:
        DIM: length of the codes it accepts, an int.

    Returns:
        An nn.Module mapping codes (B, DIM) to images (B, 1, 28, 28) with values in (0, 1):
        DIM -> 100 (ReLU) -> 784 (sigmoid), reshaped to 1 x 28 x 28.
    """
    ### BEGIN SOLUTION
    return nn.Sequential(nn.Linear(DIM, 100), nn.ReLU(), nn.Linear(100, 784), nn.Sigmoid(),
                         nn.Unflatten(1, (1, 28, 28)))
    ### END SOLUTION


# %% kind="tests" grade_id="test_builders" points=2
z = make_encoder(7)(torch.rand(4, 1, 28, 28))
assert tuple(z.shape) == (4, 7), f"make_encoder(7) should give codes of shape (4, 7), got {tuple(z.shape)}"
assert z.abs().max() < 1, "the codes of make_encoder should lie in (-1, 1): end with a Tanh"
y = make_decoder(7)(z)
assert tuple(y.shape) == (4, 1, 28, 28), f"make_decoder(7) should give shape (4, 1, 28, 28), got {tuple(y.shape)}"
assert y.min() >= 0 and y.max() <= 1, "make_decoder outputs should lie in [0, 1]"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_builders", grader.collect.ae.collect_builders, make_encoder, make_decoder)
### END HIDDEN TESTS

# %% [markdown]
# `Stack(DIM)` puts a built encoder and decoder behind the `(codes, reconstructions)` interface, so
# your `train` from part 3 trains it. The next cell trains a `Stack(100)` in six short rounds of one
# epoch each (batches of 100, Adam with learning rate 1e-3) and after every round shows how it
# reconstructs one training example of each digit 0 to 9: watch the digits sharpen.

# %%
class Stack(nn.Module):
    """make_encoder(DIM) followed by make_decoder(DIM); forward returns (codes, reconstructions)."""

    def __init__(self, DIM):
        super().__init__()
        self.encoder, self.decoder = make_encoder(DIM), make_decoder(DIM)

    def forward(self, x):
        z = self.encoder(x)
        return z, self.decoder(z)


one_of_each = torch.stack([x_train[y_train == digit][0] for digit in range(10)])
show_images(one_of_each, ncol=10, title="one training example of each digit")
if not skip_training:
    torch.manual_seed(0)
    stack = Stack(100)
    for round_ in range(1, 7):
        loss = train(stack, n_epochs=1, lr=1e-3, batch_size=100)[-1]
        with torch.no_grad():
            rebuilt = stack(one_of_each.to(device))[1].cpu()
        show_images(rebuilt, ncol=10, title=f"after round {round_}: training loss {loss:.4f}")

# %% [markdown]
# Now the code size. The cell trains a `Stack` for 5 epochs at each size ({{TIME.code_sizes}} in all on one
# CPU thread), from a very small code (2, 3)
# to a large one (32, 50, 100), then plots the test MSE against the size and shows the ten digits
# rebuilt at each size. Where does adding units stop helping? Is the 100-D code, longer than the
# 100-unit hidden layer before it, any better than 50?

# %% timed="code_sizes"
code_size_mse = {}
if not skip_training:
    for size in (2, 3, 32, 50, 100):
        torch.manual_seed(0)
        model = Stack(size)
        train(model, n_epochs=5, lr=1e-3, batch_size=100)
        code_size_mse[size] = test_mse(model)
        with torch.no_grad():
            rebuilt = model(one_of_each.to(device))[1].cpu()
        show_images(rebuilt, ncol=10, title=f"code size {size}: test MSE {code_size_mse[size]:.4f}")
    plt.plot(list(code_size_mse), list(code_size_mse.values()), "o-")
    plt.xscale("log")
    plt.xlabel("code size")
    plt.ylabel("test MSE per pixel")
    plt.show()
print({size: round(mse, 4) for size, mse in code_size_mse.items()})

# %% [markdown]
# ## 8. A sparse autoencoder
#
# A sparse autoencoder may have many code units but asks each of them to be active only rarely.
# With sigmoid code units, let $\hat\rho_j$ be the mean activation of unit $j$ over a batch. The
# penalty compares it with a small target $\rho$ through a KL divergence between Bernoulli
# distributions, summed over the units:
#
# $$\Omega = \sum_j \left[\rho \log\frac{\rho}{\hat\rho_j} + (1-\rho)\log\frac{1-\rho}{1-\hat\rho_j}\right].$$
#
# Write `sparsity_penalty(activations, rho=0.01)`: `activations` has shape `(B, units)` with values
# in $(0, 1)$; return $\Omega$ as a scalar tensor (keep it differentiable).

# %% kind="solution" grade_id="sparsity_penalty"
def sparsity_penalty(activations, rho=0.01):
    """KL sparsity penalty summed over units, rho_hat_j being unit j's mean activation over the batch.

    Args:
        activations: float tensor (B, units) of code activations strictly inside (0, 1), for example
            the outputs of a sigmoid layer.
        rho: the desired mean activation of each unit, a float in (0, 1).

    Returns:
        A differentiable scalar tensor: the Bernoulli KL divergence between rho and rho_hat_j, added up
        over the units j. It is 0 when every unit's batch mean equals rho and positive otherwise.
    """
    ### BEGIN SOLUTION
    rho_hat = activations.mean(dim=0)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    ### END SOLUTION


# %% kind="tests" grade_id="test_sparsity_penalty" points=2
value = sparsity_penalty(torch.full((4, 3), 0.01))
assert value.shape == (), f"sparsity_penalty should return a scalar, got shape {tuple(value.shape)}"
assert abs(float(value)) < 1e-6, "the penalty is zero when every unit's mean activation equals rho"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_sparsity_penalty", grader.collect.ae.collect_sparsity, sparsity_penalty)
### END HIDDEN TESTS

# %% [markdown]
# Train the compression architecture with the penalty added to the loss, at the configuration the
# three autoencoders of the exercise share: $\rho = 0.01$, penalty weight $3 \cdot 10^{-3}$, the MSE
# loss, Adam with learning rate 0.01, batches of 256, 50 epochs. The cell saves it to
# `1_ae_sparse.pth` ({{TIME.sparse}} on one CPU thread) and compares how active the code units are with
# and without the penalty.
#
# **What good looks like:** on test images, the mean activation of the code units (averaged over
# images, then over the 32 units) falls below {{AE.sparse_activation.threshold}} (a reference solution: about
# {{AE.sparse_activation.reference:.3f}}, with most units near $\rho$; the same network without the penalty: about 0.5), and
# the test MSE per pixel stays below
# {{AE.sparse_mse.threshold}} (a reference solution: about {{AE.sparse_mse.reference:.3f}}, against {{AE.compression_mse.reference:.3f}} without the penalty): sparse codes
# cost some reconstruction quality. Try a larger weight, such as $10^{-2}$: what happens to the
# reconstructions when every unit is pushed to $\rho$?

# %% timed="sparse"
torch.manual_seed(0)  # the same initial weights and mini-batches on every run
sparse_ae = CompressionAutoencoder()
if not skip_training:
    train(sparse_ae, n_epochs=50, lr=0.01, batch_size=256, penalty=lambda codes: 3e-3 * sparsity_penalty(codes))
    save_model(sparse_ae, "1_ae_sparse.pth")
else:
    load_model(sparse_ae, "1_ae_sparse.pth", device)
sparse_ae.to(device).eval()
with torch.no_grad():
    sparse_codes = sparse_ae(x_test.to(device))[0].cpu()
    dense_codes = compression_ae(x_test.to(device))[0].cpu()
print(f"test MSE per pixel: {test_mse(sparse_ae):.4f}")
print(f"mean code activation: {sparse_codes.mean():.4f} with the penalty, {dense_codes.mean():.4f} without")
plt.hist([dense_codes.mean(0), sparse_codes.mean(0)], bins=20, label=["no penalty", "sparse"])
plt.xlabel("mean activation of a code unit over the test images")
plt.legend()
plt.show()

# %% kind="tests" grade_id="test_sparse_trained" points=2
# Hidden tests load 1_ae_sparse.pth into CompressionAutoencoder() and check, on held-out images, the mean
# activation of the code units (below {{AE.sparse_activation.threshold}}) and the per-pixel MSE (below {{AE.sparse_mse.threshold}}).
### BEGIN HIDDEN TESTS
import grader.collect.ae
import grader.collect.common
grader.collect.common.store("test_sparse_trained", grader.collect.ae.collect_trained_sparse, CompressionAutoencoder)
### END HIDDEN TESTS
assert sparse_codes.mean() < dense_codes.mean(), "The penalty should make the code units less active than without it"
print("Visible tests passed.")
