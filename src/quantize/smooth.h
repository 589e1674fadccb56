// SmoothQuant's migration of activation outliers into the weights (src/quantize/quantize.h has the rule), on a
// float checkpoint's tensors in fp32: every factor is folded into the op before the linear layer, so the quantized
// checkpoint has no pre_quant_scale and runs as any W8A8 one.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "quantize/calibrate.h"

namespace kiln {

struct FloatTensor {
  std::vector<int64_t> shape;
  std::vector<float> v;
};

void smooth_checkpoint(std::map<std::string, FloatTensor>& w, const ModelConfig& c, const CalibStats& st,
                       double alpha);

}  // namespace kiln
