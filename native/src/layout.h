// A family version as the online store records it (nbfeatures.online.layout and .packing),
// and the decoding of its values (nbfeatures.online.codec, format version 1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nbf {

enum class Kind { kInt32, kInt64, kFloat32, kFloat64, kBool, kTimestamp, kString };

struct Feature {
  std::string name;
  Kind kind;
  size_t slot_offset;  // from the record's start
  int string_index;    // its place among the layout's string features; -1 for the others
};

struct Packing {
  int bits = 0;
  int chunks = 1;
  int chunk = 63;
};

struct Layout {
  std::string family;
  int64_t version = 0;
  std::string entity_key;
  std::vector<Feature> features;
  std::optional<int64_t> ttl_us;
  // ttl + retention (retention defaults to the ttl): older values are gone (NOT_FOUND).
  std::optional<int64_t> kept_us;
  size_t null_bytes = 0;
  size_t width = 0;  // the fixed part: header, null bitmap, slots
  bool has_strings = false;
  // Where the values live: the key id's tag (prefix{ID}) and the packing, if packed.
  std::string tag;
  std::optional<Packing> packing;
  // The key id's owner record (nbfeatures.online.layout, nbf:own:{ID}) and the text it must
  // hold: read with the values, which are this version's only if it does (or is absent).
  std::string owner_key;
  std::string owner;
  bool on_demand = false;

  int IndexOf(std::string_view name) const;
};

// Parses the layout's JSON; nullopt (with `error`) when it cannot be read.
std::optional<Layout> ParseLayout(const std::string& json, std::string& error);
// The packing record: nullopt for "keyed"; `ok` false when unreadable.
std::optional<Packing> ParsePacking(const std::string& text, bool& ok);

// FNV-1a over the entity text, spread by a Fibonacci step, top `bits` bits.
uint32_t BucketOf(std::string_view entity, int bits);

// One decoded record, read in place from its payload.
class Record {
 public:
  // False when the payload is not a format-1 record of this layout.
  bool Open(const Layout& layout, std::string_view payload);
  int64_t event_us() const;
  bool IsNull(size_t feature) const;
  int64_t Int(size_t feature) const;  // int32, int64, timestamp; 0 when null
  double Double(size_t feature) const;
  bool Bool(size_t feature) const;
  std::string_view Text(size_t feature) const;

 private:
  const Layout* layout_ = nullptr;
  std::string_view payload_;
  std::vector<std::string_view> strings_;
};

}  // namespace nbf
