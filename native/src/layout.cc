#include "layout.h"

#include <cstring>
#include <nlohmann/json.hpp>

namespace nbf {
namespace {

constexpr uint8_t kFormatVersion = 1;
constexpr size_t kHeader = 9;  // format byte, event time

size_t SlotWidth(Kind kind) {
  switch (kind) {
    case Kind::kInt32:
    case Kind::kFloat32:
    case Kind::kString:  // u32 length
      return 4;
    case Kind::kBool:
      return 1;
    default:
      return 8;
  }
}

std::optional<Kind> KindOf(const std::string& text) {
  if (text == "int32") return Kind::kInt32;
  if (text == "int64") return Kind::kInt64;
  if (text == "float32") return Kind::kFloat32;
  if (text == "float64") return Kind::kFloat64;
  if (text == "bool") return Kind::kBool;
  if (text == "timestamp") return Kind::kTimestamp;
  if (text == "string") return Kind::kString;
  return std::nullopt;
}

template <typename T>
T Load(const char* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));  // little endian on every platform we build for
  return value;
}

}  // namespace

int Layout::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < features.size(); ++i) {
    if (features[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::optional<Layout> ParseLayout(const std::string& json, std::string& error) {
  try {
    auto data = nlohmann::json::parse(json);
    Layout layout;
    layout.family = data.at("family").get<std::string>();
    layout.version = data.at("version").get<int64_t>();
    layout.entity_key = data.at("entity_key").get<std::string>();
    if (data.contains("ttl_seconds") && !data["ttl_seconds"].is_null()) {
      layout.ttl_us = data["ttl_seconds"].get<int64_t>() * 1000000;
      int64_t retention_us = *layout.ttl_us;
      if (data.contains("retention_seconds") && !data["retention_seconds"].is_null()) {
        retention_us = data["retention_seconds"].get<int64_t>() * 1000000;
      }
      layout.kept_us = *layout.ttl_us + retention_us;
    }
    const auto& features = data.at("features");
    layout.null_bytes = (features.size() + 7) / 8;
    size_t offset = kHeader + layout.null_bytes;
    int strings = 0;
    for (const auto& pair : features) {
      auto kind = KindOf(pair.at(1).get<std::string>());
      if (!kind) {
        error = "unknown feature type " + pair.at(1).get<std::string>();
        return std::nullopt;
      }
      int string_index = *kind == Kind::kString ? strings++ : -1;
      layout.features.push_back({pair.at(0).get<std::string>(), *kind, offset, string_index});
      layout.has_strings |= *kind == Kind::kString;
      offset += SlotWidth(*kind);
    }
    layout.width = offset;
    if (layout.features.empty()) {
      error = "a layout without features";
      return std::nullopt;
    }
    return layout;
  } catch (const std::exception& exc) {
    error = exc.what();
    return std::nullopt;
  }
}

std::optional<Packing> ParsePacking(const std::string& text, bool& ok) {
  ok = true;
  if (text == "keyed") return std::nullopt;
  try {
    auto data = nlohmann::json::parse(text);
    Packing packing{data.at("bits").get<int>(), data.at("chunks").get<int>(),
                    data.at("chunk").get<int>()};
    if (packing.bits < 0 || packing.bits > 28 || packing.chunks < 1 || packing.chunk < 1 ||
        packing.chunk > 64) {
      ok = false;
    }
    return packing;
  } catch (const std::exception&) {
    ok = false;
    return std::nullopt;
  }
}

uint32_t BucketOf(std::string_view entity, int bits) {
  uint64_t h = 0x811C9DC5u;
  for (unsigned char byte : entity) h = ((h ^ byte) * 0x01000193u) & 0xFFFFFFFFu;
  uint64_t spread = (h * 0x9E3779B1u) & 0xFFFFFFFFu;
  return static_cast<uint32_t>(spread >> (32 - bits));
}

bool Record::Open(const Layout& layout, std::string_view payload) {
  layout_ = &layout;
  payload_ = payload;
  if (payload.size() < layout.width || static_cast<uint8_t>(payload[0]) != kFormatVersion) {
    return false;
  }
  strings_.clear();
  if (layout.has_strings) {
    size_t cursor = layout.width;
    for (const auto& feature : layout.features) {
      if (feature.kind != Kind::kString) continue;
      size_t length = Load<uint32_t>(payload.data() + feature.slot_offset);
      if (cursor + length > payload.size()) return false;
      strings_.push_back(payload.substr(cursor, length));
      cursor += length;
    }
  }
  return true;
}

int64_t Record::event_us() const { return Load<int64_t>(payload_.data() + 1); }

bool Record::IsNull(size_t feature) const {
  auto byte = static_cast<uint8_t>(payload_[kHeader + feature / 8]);
  return (byte >> (feature % 8)) & 1;
}

int64_t Record::Int(size_t feature) const {
  if (IsNull(feature)) return 0;
  const auto& f = layout_->features[feature];
  const char* at = payload_.data() + f.slot_offset;
  return f.kind == Kind::kInt32 ? Load<int32_t>(at) : Load<int64_t>(at);
}

double Record::Double(size_t feature) const {
  if (IsNull(feature)) return 0.0;
  const auto& f = layout_->features[feature];
  const char* at = payload_.data() + f.slot_offset;
  return f.kind == Kind::kFloat32 ? static_cast<double>(Load<float>(at)) : Load<double>(at);
}

bool Record::Bool(size_t feature) const {
  if (IsNull(feature)) return false;
  return payload_[layout_->features[feature].slot_offset] != 0;
}

std::string_view Record::Text(size_t feature) const {
  if (IsNull(feature)) return {};
  return strings_[static_cast<size_t>(layout_->features[feature].string_index)];
}

}  // namespace nbf
