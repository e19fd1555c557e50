"""MLX networks: the hybrid autoencoder and its torchvision-exact ImageNet encoders."""
