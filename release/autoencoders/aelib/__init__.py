"""Helper code for the autoencoders assignment: MNIST data, checkpoints, evaluation and plots."""
