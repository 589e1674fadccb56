// Streaming form of the decoders in decoders.cpp. Tokens flow through the steps as events: begin() starts a
// token, text() adds to it, end() closes it, finish() ends the stream (closing whatever a step still holds).
// A step passes text on as soon as no later input can change it; what it must still see more of it keeps.
#include <string>

#include "core/error.h"
#include "tokenizer/decoders.h"
#include "tokenizer/unicode.h"

namespace kiln::tok {

struct DecodeStream::Stage {
  Stage* down = nullptr;
  virtual ~Stage() = default;
  virtual void begin() = 0;
  virtual void text(std::string_view s) = 0;
  virtual void end() = 0;
  virtual void finish() { down->finish(); }
};

namespace {

using Stage = DecodeStream::Stage;

class Collect : public Stage {
 public:
  std::string out;
  void begin() override {}
  void text(std::string_view s) override { out.append(s); }
  void end() override {}
  void finish() override {}
};

// All tokens become bytes (GPT-2's table, or the token's own bytes when a character is outside it), then one
// output token of text; an incomplete UTF-8 sequence at the end waits for more bytes.
class ByteLevelStage : public Stage {
 public:
  void begin() override { cur_.clear(); }
  void text(std::string_view s) override { cur_.append(s); }
  void end() override {
    std::string b;
    bool ok = true;
    for (size_t i = 0; i < cur_.size() && ok;) {
      size_t n;
      int v = unicode_to_byte(utf8_decode(cur_, i, n));
      if (v < 0) ok = false;
      b.push_back(static_cast<char>(v));
      i += n;
    }
    pending_ += ok ? b : cur_;
    emit(false);
  }
  void finish() override {
    emit(true);
    if (!began_) down->begin();
    down->end();
    down->finish();
  }

 private:
  void emit(bool final_chunk) {
    std::string t;
    size_t used = utf8_lossy_append(t, pending_, final_chunk);
    pending_.erase(0, used);
    if (!began_) {
      down->begin();
      began_ = true;
    }
    if (!t.empty()) down->text(t);
  }
  std::string cur_, pending_;
  bool began_ = false;
};

class ReplaceStage : public Stage {
 public:
  explicit ReplaceStage(const DecoderStep& st) : st_(st) {}
  void begin() override {
    buf_.clear();
    down->begin();
  }
  void text(std::string_view s) override {
    buf_.append(s);
    if (!st_.regex) process(false);  // a regex match may span any later text: wait for the token's end
  }
  void end() override {
    if (st_.regex) {
      std::string r = replace_for_decoder(st_, buf_);
      buf_.clear();
      if (!r.empty()) down->text(r);
    } else {
      process(true);
    }
    down->end();
  }

 private:
  void process(bool final_chunk) {
    const std::string& p = st_.pattern;
    std::string out;
    size_t pos = 0;
    for (size_t i = buf_.find(p); i != std::string::npos; i = buf_.find(p, pos)) {
      out.append(buf_, pos, i - pos);
      out += st_.content;
      pos = i + p.size();
    }
    size_t keep = buf_.size();
    if (!final_chunk) {
      // Keep the shortest tail that could still begin a match.
      size_t from = std::max(pos, buf_.size() >= p.size() ? buf_.size() - p.size() + 1 : size_t{0});
      for (size_t k = from; k < buf_.size(); ++k)
        if (p.compare(0, buf_.size() - k, buf_, k, buf_.size() - k) == 0) {
          keep = k;
          break;
        }
    }
    out.append(buf_, pos, keep - pos);
    buf_.erase(0, keep);
    if (!out.empty()) down->text(out);
  }
  const DecoderStep& st_;
  std::string buf_;
};

class ByteFallbackStage : public Stage {
 public:
  void begin() override {
    cur_.clear();
    passing_ = false;
  }
  void text(std::string_view s) override {
    if (passing_) {
      down->text(s);
      return;
    }
    cur_.append(s);
    if (cur_.size() > 6) {  // too long to be "<0xAB>": it ends any byte run and passes through
      flush_run();
      down->begin();
      down->text(cur_);
      cur_.clear();
      passing_ = true;
    }
  }
  void end() override {
    if (passing_) {
      down->end();
      return;
    }
    int b = byte_fallback_value(cur_);
    if (b >= 0) {
      run_.push_back(static_cast<char>(b));
      return;
    }
    flush_run();
    down->begin();
    if (!cur_.empty()) down->text(cur_);
    down->end();
  }
  void finish() override {
    flush_run();
    down->finish();
  }

 private:
  void flush_run() {
    if (run_.empty()) return;
    if (utf8_valid(run_)) {
      down->begin();
      down->text(run_);
      down->end();
    } else {
      for (size_t k = 0; k < run_.size(); ++k) {
        down->begin();
        down->text("\xEF\xBF\xBD");
        down->end();
      }
    }
    run_.clear();
  }
  std::string cur_, run_;
  bool passing_ = false;
};

class FuseStage : public Stage {
 public:
  void begin() override {
    if (!began_) down->begin();
    began_ = true;
  }
  void text(std::string_view s) override { down->text(s); }
  void end() override {}
  void finish() override {
    if (!began_) down->begin();
    down->end();
    down->finish();
  }

 private:
  bool began_ = false;
};

class StripStage : public Stage {
 public:
  explicit StripStage(const DecoderStep& st) : st_(st) { utf8_append(ch_, st.strip_char); }
  void begin() override {
    lead_ = 0;
    in_lead_ = st_.start > 0;
    held_ = 0;
    down->begin();
  }
  void text(std::string_view s) override {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      size_t n;
      uint32_t cp = utf8_decode(s, i, n);
      bool is_c = cp == st_.strip_char;
      if (in_lead_) {
        if (is_c && lead_ < st_.start) {
          ++lead_;
          i += n;
          continue;
        }
        in_lead_ = false;
      }
      if (is_c && st_.stop > 0) {
        if (held_ == st_.stop)
          out += ch_;  // the oldest held one can no longer be among the last `stop`
        else
          ++held_;
      } else {
        for (size_t k = 0; k < held_; ++k) out += ch_;
        held_ = 0;
        out.append(s.substr(i, n));
      }
      i += n;
    }
    if (!out.empty()) down->text(out);
  }
  void end() override {
    held_ = 0;  // the trailing ones (at most `stop`) are cut
    down->end();
  }

 private:
  const DecoderStep& st_;
  std::string ch_;
  size_t lead_ = 0, held_ = 0;
  bool in_lead_ = false;
};

class MetaspaceStage : public Stage {
 public:
  explicit MetaspaceStage(const DecoderStep& st) : st_(st) {}
  void begin() override {
    ++index_;
    down->begin();
  }
  void text(std::string_view s) override {
    const std::string& r = st_.replacement;
    std::string out;
    out.reserve(s.size());
    for (size_t p = 0; p < s.size();) {
      if (s.compare(p, r.size(), r) == 0) {
        if (!(index_ == 0 && st_.prepend)) out += ' ';
        p += r.size();
      } else {
        out += s[p++];
      }
    }
    if (!out.empty()) down->text(out);
  }
  void end() override { down->end(); }

 private:
  const DecoderStep& st_;
  long index_ = -1;
};

}  // namespace

DecodeStream::DecodeStream(const DecoderSpec& spec) : none_(spec.none) {
  for (const DecoderStep& st : spec.steps) {
    switch (st.kind) {
      case DecoderStep::Kind::ByteLevel: stages_.push_back(std::make_unique<ByteLevelStage>()); break;
      case DecoderStep::Kind::Replace: stages_.push_back(std::make_unique<ReplaceStage>(st)); break;
      case DecoderStep::Kind::ByteFallback: stages_.push_back(std::make_unique<ByteFallbackStage>()); break;
      case DecoderStep::Kind::Fuse: stages_.push_back(std::make_unique<FuseStage>()); break;
      case DecoderStep::Kind::Strip: stages_.push_back(std::make_unique<StripStage>(st)); break;
      case DecoderStep::Kind::Metaspace: stages_.push_back(std::make_unique<MetaspaceStage>(st)); break;
    }
  }
  stages_.push_back(std::make_unique<Collect>());
  for (size_t i = 0; i + 1 < stages_.size(); ++i) stages_[i]->down = stages_[i + 1].get();
}

DecodeStream::~DecodeStream() = default;

std::string DecodeStream::push(std::string_view token) {
  if (finished_) fail("incremental decoder: push() after flush()");
  auto& sink = static_cast<Collect&>(*stages_.back());
  if (none_) {
    if (!first_) sink.out += ' ';
    sink.out.append(token);
  } else {
    stages_.front()->begin();
    stages_.front()->text(token);
    stages_.front()->end();
  }
  first_ = false;
  std::string r;
  r.swap(sink.out);
  return r;
}

std::string DecodeStream::finish() {
  if (finished_) return {};
  finished_ = true;
  auto& sink = static_cast<Collect&>(*stages_.back());
  if (!none_) stages_.front()->finish();
  std::string r;
  r.swap(sink.out);
  return r;
}

}  // namespace kiln::tok
