// Perplexity of an engine over token sequences, with lm-eval's loglikelihood_rolling windows: a document's tokens
// are cut into disjoint windows of at most max_length predicted tokens; the first window is [prefix] + tokens[:L-1]
// predicting tokens[:L], each next one predicts the next min(L, left) tokens from an input of the L tokens that end
// just before its last predicted token, so every token is predicted once, with as many previous tokens as context
// as the window holds.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/engine.h"

namespace kiln {

struct RollingWindow {
  std::vector<int32_t> input;  // the tokens run through the model
  int64_t predicted = 0;       // its last `predicted` positions predict the window's tokens (each the next input
                               // token, the last one the token after the input)
  int32_t last = 0;            // the token the input's last position predicts
};

std::vector<RollingWindow> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix, int64_t max_length);

// The negative log-likelihood (natural log, summed) of every window's predicted tokens, each window a fresh
// sequence of the engine (log-softmax of its float32 logits in double). `progress` is called after each window.
double windows_nll(Engine& engine, const std::vector<RollingWindow>& windows,
                   const std::function<void(size_t done)>& progress = {});

}  // namespace kiln
