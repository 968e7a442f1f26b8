// tensorquant training: autograd, quantization-aware training, gradient quantization,
// TQT, optimizers and the IDX / Fashion-MNIST loader. Includes nn.hpp.
#pragma once

#include "data/idx.hpp"
#include "nn.hpp"
#include "train/autograd.hpp"
#include "train/optimizer.hpp"
#include "train/quantization.hpp"
#include "train/trainer.hpp"
