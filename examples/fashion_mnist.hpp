// Where Debian's dataset-fashion-mnist package puts Fashion-MNIST.
#pragma once

inline constexpr char const* debian_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
