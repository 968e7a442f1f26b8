// Every reference layer (one header each under nn/layers/).
#pragma once

#include "layers/list.hpp"
