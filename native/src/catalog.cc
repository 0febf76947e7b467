#include "catalog.h"

#include <vector>

namespace nbf {
namespace {

constexpr size_t kMaxCached = 4096;  // bounded: clients choose which families they name

}  // namespace

int64_t Catalog::Live(RedisConnection& redis, const std::string& family,
                      std::chrono::steady_clock::time_point deadline, Failure& failure,
                      std::string& error) {
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = live_.find(family);
    if (found != live_.end() && now - found->second.second < live_cache_) {
      return found->second.first;
    }
  }
  std::string command;
  AppendCommand(command, {"GET", prefix_ + "live:{" + family + "}"});
  std::vector<Reply> replies;
  failure = redis.RoundTrip(command, 1, replies, deadline, error);
  if (failure != Failure::kNone) return 0;
  int64_t version = 0;
  if (replies[0].type == Reply::Type::kBulk) {
    try {
      version = std::stoll(replies[0].text);
    } catch (const std::exception&) {
      version = 0;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (live_.size() >= kMaxCached) live_.clear();
  live_[family] = {version, now};
  return version;
}

std::shared_ptr<const Layout> Catalog::Version(RedisConnection& redis, const std::string& family,
                                               int64_t version,
                                               std::chrono::steady_clock::time_point deadline,
                                               Failure& failure, std::string& error) {
  std::string where = "{" + family + "}:v" + std::to_string(version);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = versions_.find(where);
    if (found != versions_.end()) return found->second;
  }
  std::string commands;
  AppendCommand(commands, {"GET", prefix_ + "layout:" + where});
  AppendCommand(commands, {"GET", prefix_ + "kid:" + where});
  AppendCommand(commands, {"GET", prefix_ + "pack:" + where});
  AppendCommand(commands, {"EXISTS", prefix_ + "ondemand:" + where});
  std::vector<Reply> replies;
  failure = redis.RoundTrip(commands, 4, replies, deadline, error);
  if (failure != Failure::kNone) return nullptr;
  if (replies[0].type != Reply::Type::kBulk || replies[1].type != Reply::Type::kBulk) {
    return nullptr;  // not (yet) in the store: not cached, the next call looks again
  }
  std::string parse_error;
  auto layout = ParseLayout(replies[0].text, parse_error);
  if (!layout || layout->family != family || layout->version != version) return nullptr;
  layout->tag = prefix_ + "{" + replies[1].text + "}";
  if (replies[2].type == Reply::Type::kBulk) {
    bool ok = true;
    layout->packing = ParsePacking(replies[2].text, ok);
    if (!ok) return nullptr;
  }
  layout->on_demand = replies[3].type == Reply::Type::kInteger && replies[3].integer > 0;
  auto shared = std::make_shared<const Layout>(std::move(*layout));
  std::lock_guard<std::mutex> lock(mutex_);
  if (versions_.size() >= kMaxCached) versions_.clear();
  versions_[where] = shared;
  return shared;
}

}  // namespace nbf
