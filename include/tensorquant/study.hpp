// tensorquant study: the experiments of the TensorQuant papers as library functions
// (evaluation engine, records, experiments, reports and plots). Part of the train
// component; includes train.hpp.
#pragma once

#include "study/evaluate.hpp"
#include "study/experiments.hpp"
#include "study/mixed.hpp"
#include "study/records.hpp"
#include "study/report.hpp"
#include "train.hpp"
