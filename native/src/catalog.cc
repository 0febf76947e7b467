#include "catalog.h"

#include <vector>

namespace nbf {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxCached = 4096;  // bounded: clients choose which families they name

// The keys of nbfeatures.online.layout.KeySpace that the read path needs (that module owns
// the layout; these follow it): the live pointer, and a version's key id, packing and layout
// (KeySpace.version_records), all in the {family} slot.
std::string LiveKey(const std::string& prefix, const std::string& family) {
  return prefix + "live:{" + family + "}";
}

std::vector<std::string> VersionKeys(const std::string& prefix, const std::string& family,
                                     int64_t version) {
  std::string where = "{" + family + "}:v" + std::to_string(version);
  return {prefix + "kid:" + where, prefix + "pack:" + where, prefix + "layout:" + where};
}

std::string OnDemandKey(const std::string& prefix, const std::string& family, int64_t version) {
  return prefix + "ondemand:{" + family + "}:v" + std::to_string(version);
}

std::optional<std::string> Text(const Reply& reply) {
  if (reply.type != Reply::Type::kBulk) return std::nullopt;
  return reply.text;
}

}  // namespace

std::shared_ptr<const Layout> Catalog::Build(const std::string& family, int64_t version,
                                             const Records& records, bool on_demand) const {
  if (!records.layout || !records.key_id) return nullptr;  // not (yet) in the store
  std::string parse_error;
  auto layout = ParseLayout(*records.layout, parse_error);
  if (!layout || layout->family != family || layout->version != version) return nullptr;
  layout->tag = prefix_ + "{" + *records.key_id + "}";
  layout->owner_key = prefix_ + "own:{" + *records.key_id + "}";
  layout->owner = family + ":v" + std::to_string(version);
  if (records.packing) {
    bool ok = true;
    layout->packing = ParsePacking(*records.packing, ok);
    if (!ok) return nullptr;
  }
  layout->on_demand = on_demand;
  return std::make_shared<const Layout>(std::move(*layout));
}

void Catalog::Check(RedisConnection& redis, const std::string& family,
                    Clock::time_point deadline, Failure& failure, std::string& error) {
  auto now = Clock::now();
  std::vector<int64_t> versions;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = families_.find(family);
    if (found != families_.end()) {
      if (found->second.ever_checked && now - found->second.checked < live_cache_) return;
      for (const auto& [version, cached] : found->second.versions) versions.push_back(version);
    }
  }
  std::vector<std::string> keys = {LiveKey(prefix_, family)};
  for (int64_t version : versions) {
    for (auto& key : VersionKeys(prefix_, family, version)) keys.push_back(std::move(key));
  }
  std::vector<std::string_view> parts = {"MGET"};
  for (const auto& key : keys) parts.push_back(key);
  std::string command;
  AppendCommand(command, parts);
  std::vector<Reply> replies;
  failure = redis.RoundTrip(command, 1, replies, deadline, error);
  if (failure != Failure::kNone) return;
  const Reply& reply = replies[0];
  if (reply.type != Reply::Type::kArray || reply.items.size() != keys.size()) {
    failure = Failure::kConnection;
    error = "MGET answered " + (reply.type == Reply::Type::kError ? reply.text : "unexpectedly");
    return;
  }
  int64_t live = 0;
  if (auto text = Text(reply.items[0])) {
    try {
      live = std::stoll(*text);
    } catch (const std::exception&) {
      live = 0;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (families_.size() >= kMaxCached && families_.find(family) == families_.end()) {
    families_.clear();
  }
  Family& state = families_[family];
  state.live = live;
  state.checked = now;
  state.ever_checked = true;
  for (size_t i = 0; i < versions.size(); ++i) {
    Records got{Text(reply.items[1 + 3 * i]), Text(reply.items[2 + 3 * i]),
                Text(reply.items[3 + 3 * i])};
    auto cached = state.versions.find(versions[i]);
    if (cached == state.versions.end()) continue;  // forgotten meanwhile
    if (cached->second.records == got) continue;
    auto rebuilt = Build(family, versions[i], got, cached->second.layout->on_demand);
    if (rebuilt) {
      cached->second = {std::move(got), std::move(rebuilt)};
    } else {
      state.versions.erase(cached);  // vanished or unreadable: the next request reads it
    }
  }
}

void Catalog::Suspect(const std::string& family) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = families_.find(family);
  if (found != families_.end()) found->second.ever_checked = false;
}

int64_t Catalog::Live(RedisConnection& redis, const std::string& family,
                      Clock::time_point deadline, Failure& failure, std::string& error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);  // the usual case: one lookup, one lock
    auto found = families_.find(family);
    if (found != families_.end() && found->second.ever_checked &&
        Clock::now() - found->second.checked < live_cache_) {
      return found->second.live;
    }
  }
  Check(redis, family, deadline, failure, error);
  if (failure != Failure::kNone) return 0;
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = families_.find(family);
  return found == families_.end() ? 0 : found->second.live;
}

std::shared_ptr<const Layout> Catalog::Version(RedisConnection& redis, const std::string& family,
                                               int64_t version, Clock::time_point deadline,
                                               Failure& failure, std::string& error) {
  for (bool checked = false;; checked = true) {
    {
      std::lock_guard<std::mutex> lock(mutex_);  // the usual case: one lookup, one lock
      auto found = families_.find(family);
      if (found != families_.end() && found->second.ever_checked &&
          (checked || Clock::now() - found->second.checked < live_cache_)) {
        auto cached = found->second.versions.find(version);
        if (cached != found->second.versions.end()) return cached->second.layout;
        break;  // current, without this version: read it below
      }
    }
    if (checked) break;
    Check(redis, family, deadline, failure, error);
    if (failure != Failure::kNone) return nullptr;
  }
  auto keys = VersionKeys(prefix_, family, version);
  std::string on_demand_key = OnDemandKey(prefix_, family, version);
  std::string commands;
  AppendCommand(commands, {"MGET", keys[0], keys[1], keys[2]});
  AppendCommand(commands, {"EXISTS", on_demand_key});
  std::vector<Reply> replies;
  failure = redis.RoundTrip(commands, 2, replies, deadline, error);
  if (failure != Failure::kNone) return nullptr;
  const Reply& mget = replies[0];
  if (mget.type != Reply::Type::kArray || mget.items.size() != 3) return nullptr;
  Records records{Text(mget.items[0]), Text(mget.items[1]), Text(mget.items[2])};
  bool on_demand = replies[1].type == Reply::Type::kInteger && replies[1].integer > 0;
  auto layout = Build(family, version, records, on_demand);
  if (!layout) return nullptr;  // not cached: the next call looks again
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = families_.find(family);
  // Cached only under a family entry (made by Check above, unless cleared meanwhile), so
  // that the family's next check covers it.
  if (found != families_.end()) found->second.versions[version] = {std::move(records), layout};
  return layout;
}

}  // namespace nbf
