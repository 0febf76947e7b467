#include "feature_service.h"

#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/method_handler.h>

#include <algorithm>
#include <array>
#include <random>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace nbf {
namespace {

using Clock = std::chrono::steady_clock;

// The reference grammar of nbfeatures.definitions.FeatureRef: family, optional @vN, feature.
bool IsName(std::string_view text) {
  if (text.empty() || text.size() > 63 || text[0] < 'a' || text[0] > 'z') return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

struct Ref {
  std::string family;
  int64_t version = 0;  // 0: production
  std::string feature;  // "*": every feature
};

bool ParseRef(const std::string& text, Ref& ref) {
  auto colon = text.find(':');
  if (colon == std::string::npos) return false;
  std::string_view head(text.data(), colon);
  ref.feature = text.substr(colon + 1);
  if (ref.feature != "*" && !IsName(ref.feature)) return false;
  auto at = head.find("@v");
  if (at == std::string_view::npos) {
    ref.version = 0;
  } else {
    std::string_view digits = head.substr(at + 2);
    if (digits.empty() || digits.size() > 18 || digits[0] == '0') return false;
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    ref.version = std::stoll(std::string(digits));
    head = head.substr(0, at);
  }
  if (!IsName(head)) return false;
  ref.family.assign(head);
  return true;
}

struct Group {
  std::string family;
  int64_t pinned = 0;
  bool wildcard = false;
  std::vector<std::string> features;
  std::shared_ptr<const Layout> layout;
  std::vector<size_t> columns;  // feature indices in the layout, in response order
  std::vector<int> chunks;      // a packed version's chunks holding them (and the header)
  size_t first_reply = 0;
};

const char* CodeName(grpc::StatusCode code) {
  static const std::array<const char*, 17> names = {
      "OK",        "CANCELLED",          "UNKNOWN",          "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",   "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",      "DATA_LOSS",
      "UNAUTHENTICATED"};
  auto index = static_cast<size_t>(code);
  return index < names.size() ? names[index] : "UNKNOWN";
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Clock::time_point SteadyDeadline(const grpc::ServerContext* context) {
  auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return Clock::time_point::max();
  }
  return Clock::now() + (deadline - std::chrono::system_clock::now());
}

void ClientDeadline(const grpc::ServerContext* context, grpc::ClientContext& client) {
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    client.set_deadline(context->deadline());
  }
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

class Timer {
 public:
  Timer() : started_(Clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(Clock::now() - started_).count();
  }

 private:
  Clock::time_point started_;
};

// Keeps the in-flight gauge true on every way out of a handler.
class InFlight {
 public:
  explicit InFlight(std::atomic<int64_t>& gauge) : gauge_(gauge) { gauge_.fetch_add(1); }
  ~InFlight() { gauge_.fetch_sub(1); }

 private:
  std::atomic<int64_t>& gauge_;
};

constexpr const char* kGetOnlineFeatures = "/nbfeatures.serving.v1.FeatureService/GetOnlineFeatures";
constexpr const char* kListFeatures = "/nbfeatures.serving.v1.FeatureService/ListFeatures";
constexpr const char* kDescribeFamily = "/nbfeatures.serving.v1.FeatureService/DescribeFamily";

// `data` parsed as `message`; INVALID_ARGUMENT naming the message when the bytes are not one.
// (The text matches the Python plane's, whose parser says "wire format was corrupt".)
grpc::Status Parse(const grpc::ByteBuffer& data, google::protobuf::Message& message) {
  grpc::ByteBuffer view(data);  // shares the slices; the reader needs a mutable buffer
  grpc::ProtoBufferReader reader(&view);
  if (reader.status().ok() && message.ParseFromZeroCopyStream(&reader)) {
    return grpc::Status::OK;
  }
  return {grpc::StatusCode::INVALID_ARGUMENT, "the request is not a valid " +
                                                  message.GetDescriptor()->full_name() +
                                                  ": wire format was corrupt"};
}

template <typename Handler>
grpc::internal::RpcServiceMethod* RawMethod(const char* name, FeatureServiceImpl* service,
                                           Handler handler) {
  return new grpc::internal::RpcServiceMethod(
      name, grpc::internal::RpcMethod::NORMAL_RPC,
      new grpc::internal::RpcMethodHandler<FeatureServiceImpl, grpc::ByteBuffer,
                                           grpc::ByteBuffer>(handler, service));
}

}  // namespace

FeatureServiceImpl::FeatureServiceImpl(ServiceOptions options,
                                       std::shared_ptr<grpc::Channel> backend, Metrics& metrics,
                                       std::function<void(bool)> set_health)
    : options_(std::move(options)),
      backend_(std::move(backend)),
      backend_get_(kGetOnlineFeatures, grpc::internal::RpcMethod::NORMAL_RPC, backend_),
      backend_list_(kListFeatures, grpc::internal::RpcMethod::NORMAL_RPC, backend_),
      backend_describe_(kDescribeFamily, grpc::internal::RpcMethod::NORMAL_RPC, backend_),
      metrics_(metrics),
      set_health_(std::move(set_health)),
      catalog_(options_.prefix, options_.live_cache),
      expected_token_(options_.token.empty() ? "" : "Bearer " + options_.token) {
  AddMethod(RawMethod(kGetOnlineFeatures, this, std::mem_fn(&FeatureServiceImpl::GetOnlineFeatures)));
  AddMethod(RawMethod(kListFeatures, this, std::mem_fn(&FeatureServiceImpl::ListFeatures)));
  AddMethod(RawMethod(kDescribeFamily, this, std::mem_fn(&FeatureServiceImpl::DescribeFamily)));
}

grpc::Status FeatureServiceImpl::Authorize(grpc::ServerContext* context) const {
  if (expected_token_.empty()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  auto found = metadata.find("authorization");
  if (found == metadata.end()) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "this server needs a bearer token in the 'authorization' metadata"};
  }
  // Which of two tokens counts would be a guess (proxies differ): refuse both.
  if (metadata.count("authorization") > 1) {
    return {grpc::StatusCode::UNAUTHENTICATED, "more than one authorization header was sent"};
  }
  std::string_view given(found->second.data(), found->second.size());
  if (!ConstantTimeEqual(given, expected_token_)) {
    return {grpc::StatusCode::UNAUTHENTICATED, "the bearer token was not accepted"};
  }
  return grpc::Status::OK;
}

RedisConnection& FeatureServiceImpl::Connection() {
  // One connection per handler thread: a round trip holds it alone, with no lock.
  thread_local std::unique_ptr<RedisConnection> connection;
  thread_local const FeatureServiceImpl* owner = nullptr;
  if (!connection || owner != this) {
    connection = std::make_unique<RedisConnection>(options_.redis, options_.redis_timeout);
    owner = this;
  }
  return *connection;
}

bool FeatureServiceImpl::Sampled() {
  if (options_.log_sample_rate <= 0.0) return false;
  if (options_.log_sample_rate >= 1.0) return true;
  thread_local std::mt19937_64 random{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(random) < options_.log_sample_rate;
}

grpc::Status FeatureServiceImpl::Unreachable(const std::string& error) {
  metrics_.RedisError();
  set_health_(false);
  return {grpc::StatusCode::UNAVAILABLE, "the online store cannot be reached: " + error};
}

grpc::Status FeatureServiceImpl::GetOnlineFeatures(grpc::ServerContext* context,
                                                   const grpc::ByteBuffer* data,
                                                   grpc::ByteBuffer* answer) {
  arrivals_.fetch_add(1, std::memory_order_relaxed);
  grpc::Status status = Authorize(context);
  if (!status.ok()) return status;
  InFlight in_flight(metrics_.in_flight());
  Timer timer;
  pb::GetOnlineFeaturesRequest request;
  status = Parse(*data, request);
  if (status.ok()) {
    pb::GetOnlineFeaturesResponse response;
    // A call sampled for the served-vector log is answered (and logged) by the backend.
    bool sampled = Sampled();
    if (sampled || TryAnswer(context, request, response, status) == Outcome::kForward) {
      metrics_.Backend("GetOnlineFeatures");
      status = Forward(backend_get_, context, *data, *answer, sampled);
      if (status.ok()) {
        response.Clear();
        if (Parse(*answer, response).ok()) Account(response);
      }
    } else if (status.ok()) {
      bool own_buffer = false;
      status = grpc::SerializationTraits<pb::GetOnlineFeaturesResponse>::Serialize(
          response, answer, &own_buffer);
    }
  }
  metrics_.Call("GetOnlineFeatures", CodeName(status.error_code()), timer.seconds());
  return status;
}

FeatureServiceImpl::Outcome FeatureServiceImpl::TryAnswer(
    grpc::ServerContext* context, const pb::GetOnlineFeaturesRequest& request,
    pb::GetOnlineFeaturesResponse& response, grpc::Status& status) {
  // Anything unusual is the Python path's to answer or refuse.
  if (!request.request_data().empty() ||
      request.features().empty() || request.entities().empty() ||
      static_cast<int64_t>(request.features_size()) > options_.max_features ||
      static_cast<int64_t>(request.ByteSizeLong()) > options_.max_request_bytes) {
    return Outcome::kForward;
  }
  int64_t rows = -1;
  for (const auto& [name, column] : request.entities()) {
    int64_t size;
    if (column.has_int64_values()) {
      size = column.int64_values().values_size();
    } else if (column.has_string_values()) {
      size = column.string_values().values_size();
    } else {
      return Outcome::kForward;
    }
    if (rows >= 0 && size != rows) return Outcome::kForward;
    rows = size;
  }
  if (rows <= 0 || rows > options_.max_entities) return Outcome::kForward;

  auto deadline = SteadyDeadline(context);
  if (deadline <= Clock::now()) {
    status = {grpc::StatusCode::DEADLINE_EXCEEDED, "the deadline passed before reading"};
    return Outcome::kAnswered;
  }

  // References grouped by (family, pinned version or production), in first-seen order.
  std::vector<Group> groups;
  std::vector<std::string> seen;
  for (const auto& text : request.features()) {
    Ref ref;
    if (!ParseRef(text, ref)) return Outcome::kForward;
    if (std::find(seen.begin(), seen.end(), text) != seen.end()) return Outcome::kForward;
    seen.push_back(text);
    auto group = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
      return g.family == ref.family && g.pinned == ref.version;
    });
    if (group == groups.end()) {
      Group added;
      added.family = ref.family;
      added.pinned = ref.version;
      groups.push_back(std::move(added));
      group = groups.end() - 1;
    }
    if (ref.feature == "*") {
      group->wildcard = true;
    } else if (std::find(group->features.begin(), group->features.end(), ref.feature) ==
               group->features.end()) {
      group->features.push_back(ref.feature);
    }
  }

  RedisConnection& redis = Connection();
  Failure failure = Failure::kNone;
  std::string error;
  auto failed = [&]() {
    status = failure == Failure::kDeadline
                 ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                "the deadline passed while reading")
             : failure == Failure::kStopped ? Stopped()
                                            : Unreachable(error);
    return Outcome::kAnswered;
  };
  size_t served = 0;
  std::string commands;
  size_t replies = 0;
  std::vector<const pb::EntityColumn*> keys_of(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    Group& group = groups[g];
    int64_t version = group.pinned;
    if (version == 0) {
      version = catalog_.Live(redis, group.family, deadline, failure, error);
      if (failure != Failure::kNone) return failed();
      if (version == 0) return Outcome::kForward;
    }
    group.layout = catalog_.Version(redis, group.family, version, deadline, failure, error);
    if (failure != Failure::kNone) return failed();
    if (!group.layout || group.layout->on_demand) return Outcome::kForward;
    const Layout& layout = *group.layout;
    if (group.wildcard) {
      for (size_t i = 0; i < layout.features.size(); ++i) group.columns.push_back(i);
    } else {
      for (const auto& name : group.features) {
        int index = layout.IndexOf(name);
        if (index < 0) return Outcome::kForward;
        group.columns.push_back(static_cast<size_t>(index));
      }
    }
    served += group.columns.size();
    if (layout.packing) {
      // Only the chunks holding the header and the features asked for are read: a 50-feature
      // record spans 7 chunks, 10 of its features 2, and each field read costs Redis a scan
      // of the bucket's listpack.
      const Packing& packing = *layout.packing;
      std::vector<bool> needed(static_cast<size_t>(packing.chunks), false);
      needed[0] = true;
      size_t header = layout.features[0].slot_offset;  // format, event time, null bitmap
      for (size_t at = 0; at < header; at += static_cast<size_t>(packing.chunk)) {
        needed[at / static_cast<size_t>(packing.chunk)] = true;
      }
      for (size_t index : group.columns) {
        const Feature& feature = layout.features[index];
        size_t end = index + 1 < layout.features.size() ? layout.features[index + 1].slot_offset
                                                        : layout.width;
        for (size_t at = feature.slot_offset; at < end; ++at) {
          size_t chunk = at / static_cast<size_t>(packing.chunk);
          if (chunk >= needed.size()) return Outcome::kForward;  // not this layout's packing
          needed[chunk] = true;
        }
      }
      for (size_t c = 0; c < needed.size(); ++c) {
        if (needed[c]) group.chunks.push_back(static_cast<int>(c));
      }
    }
    auto column = request.entities().find(layout.entity_key);
    if (column == request.entities().end()) return Outcome::kForward;
    keys_of[g] = &column->second;
  }
  if (static_cast<int64_t>(served) > options_.max_features) return Outcome::kForward;

  // Every family's reads in one round trip: an MGET per keyed version, an HMGET per entity of
  // a packed one.
  // Entity keys as text, once per entity column (families sharing a join key share it).
  std::unordered_map<const pb::EntityColumn*, std::vector<std::string>> texts_of;
  for (size_t g = 0; g < groups.size(); ++g) {
    const Layout& layout = *groups[g].layout;
    const pb::EntityColumn& column = *keys_of[g];
    auto [found, fresh] = texts_of.try_emplace(&column);
    auto& texts = found->second;
    if (fresh) {
      texts.reserve(static_cast<size_t>(rows));
      if (column.has_int64_values()) {
        for (auto value : column.int64_values().values()) texts.push_back(std::to_string(value));
      } else {
        for (const auto& value : column.string_values().values()) texts.push_back(value);
      }
    }
    // The key id's owner record first, in the values' slot: read in the same round trip.
    AppendCommand(commands, {"GET", layout.owner_key});
    replies += 1;
    groups[g].first_reply = replies;
    if (!layout.packing) {
      std::vector<std::string> keys;
      keys.reserve(texts.size());
      for (const auto& text : texts) keys.push_back(layout.tag + text);
      std::vector<std::string_view> parts{"MGET"};
      parts.insert(parts.end(), keys.begin(), keys.end());
      AppendCommand(commands, parts);
      replies += 1;
    } else {
      const Packing& packing = *layout.packing;
      const auto& chunks = groups[g].chunks;
      std::vector<std::string> fields(chunks.size());
      for (const auto& text : texts) {
        std::string bucket = layout.tag + std::to_string(BucketOf(text, packing.bits));
        std::vector<std::string_view> parts{"HMGET", bucket};
        for (size_t i = 0; i < chunks.size(); ++i) {
          fields[i] = text + static_cast<char>(chunks[i]);
          parts.push_back(fields[i]);
        }
        AppendCommand(commands, parts);
      }
      replies += texts.size();
    }
  }
  Timer read_timer;
  std::vector<Reply> answers;
  failure = redis.RoundTrip(commands, replies, answers, deadline, error);
  if (failure != Failure::kNone) return failed();
  double read_seconds = read_timer.seconds();
  int64_t now_us = NowMicros();

  // Payloads per group and row; a Redis error reply or a value that does not decode leaves
  // the request to the Python path, which reports it as that server does.
  response.set_row_count(static_cast<int32_t>(rows));
  response.set_request_time_us(now_us);
  bool omit_times = request.options().omit_event_times();
  std::string joined;
  for (auto& group : groups) {
    const Layout& layout = *group.layout;
    // Values whose key id another version drew after a data loss are not this version's:
    // the Python path, which checks the same, answers (NOT_FOUND) and the catalog re-checks.
    const Reply& owner = answers[group.first_reply - 1];
    if (owner.type == Reply::Type::kBulk && owner.text != layout.owner) {
      catalog_.Suspect(layout.family);
      return Outcome::kForward;
    }
    if (owner.type != Reply::Type::kBulk && owner.type != Reply::Type::kNil) {
      return Outcome::kForward;
    }
    std::vector<std::string_view> payloads(static_cast<size_t>(rows));
    std::vector<std::string> owned;  // chunks joined, for packed records over one chunk
    owned.reserve(static_cast<size_t>(rows));
    for (size_t row = 0; row < static_cast<size_t>(rows); ++row) {
      const Reply* reply;
      if (!layout.packing) {
        const Reply& mget = answers[group.first_reply];
        if (mget.type != Reply::Type::kArray || mget.items.size() != static_cast<size_t>(rows)) {
          return Outcome::kForward;
        }
        reply = &mget.items[row];
        if (reply->type == Reply::Type::kBulk) {
          payloads[row] = reply->text;
        } else if (reply->type != Reply::Type::kNil) {
          return Outcome::kForward;
        }
        continue;
      }
      reply = &answers[group.first_reply + row];
      if (reply->type != Reply::Type::kArray) return Outcome::kForward;
      bool missing = std::any_of(reply->items.begin(), reply->items.end(),
                                 [](const Reply& r) { return r.type != Reply::Type::kBulk; });
      if (missing) continue;  // every chunk is written by one command: one missing, all are
      if (reply->items.size() != group.chunks.size()) return Outcome::kForward;
      if (layout.packing->chunks == 1) {
        payloads[row] = reply->items[0].text;
        continue;
      }
      // The record at full width, the chunks read in place and zeros where none was read
      // (no feature asked for lives there).
      size_t step = static_cast<size_t>(layout.packing->chunk);
      joined.assign(layout.width, '\0');
      for (size_t i = 0; i < group.chunks.size(); ++i) {
        size_t at = static_cast<size_t>(group.chunks[i]) * step;
        const std::string& chunk = reply->items[i].text;
        if (at + chunk.size() > layout.width || chunk.size() != std::min(step, layout.width - at)) {
          return Outcome::kForward;  // not a chunk of this layout: the Python path reports it
        }
        joined.replace(at, chunk.size(), chunk);
      }
      owned.push_back(joined);
      payloads[row] = owned.back();
    }

    std::vector<Record> records(static_cast<size_t>(rows));
    pb::FamilyBlock* block = response.add_families();
    block->set_family(layout.family);
    block->set_version(layout.version);
    block->set_pinned(group.pinned != 0);
    block->set_entity_key(layout.entity_key);
    std::array<uint64_t, 5> counts{};
    int64_t newest = INT64_MIN;
    int64_t limit = layout.ttl_us ? now_us - *layout.ttl_us : INT64_MIN;
    int64_t gone = layout.kept_us ? now_us - *layout.kept_us : INT64_MIN;
    for (size_t row = 0; row < static_cast<size_t>(rows); ++row) {
      int status = 2;  // NOT_FOUND
      int64_t event_us = 0;
      if (payloads[row].data() != nullptr) {
        if (!records[row].Open(layout, payloads[row])) return Outcome::kForward;
        event_us = records[row].event_us();
        if (layout.kept_us && event_us <= gone) {
          // Past ttl + retention, still in a bucket a newer member keeps alive: absent.
          payloads[row] = std::string_view();
          event_us = 0;
        } else {
          status = layout.ttl_us && event_us <= limit ? 3 : 1;  // STALE : PRESENT
          newest = std::max(newest, event_us);
        }
      }
      ++counts[static_cast<size_t>(status)];
      block->add_statuses(static_cast<pb::ValueStatus>(status));
      if (!omit_times) block->add_event_time_us(event_us);
    }
    for (size_t index : group.columns) {
      const Feature& feature = layout.features[index];
      pb::FeatureColumn* column = block->add_features();
      column->set_name(feature.name);
      pb::Values* values = column->mutable_values();
      auto found = [&](size_t row) { return payloads[row].data() != nullptr; };
      switch (feature.kind) {
        case Kind::kInt32:
        case Kind::kInt64:
        case Kind::kTimestamp: {
          bool timestamp = feature.kind == Kind::kTimestamp;
          column->set_type(timestamp ? pb::FEATURE_TYPE_TIMESTAMP
                           : feature.kind == Kind::kInt32 ? pb::FEATURE_TYPE_INT32
                                                          : pb::FEATURE_TYPE_INT64);
          auto* out = timestamp ? values->mutable_timestamp_values()->mutable_values()
                                : values->mutable_int64_values()->mutable_values();
          out->Reserve(static_cast<int>(rows));
          for (size_t row = 0; row < static_cast<size_t>(rows); ++row) {
            out->AddAlreadyReserved(found(row) ? records[row].Int(index) : 0);
          }
          break;
        }
        case Kind::kFloat32:
        case Kind::kFloat64: {
          column->set_type(feature.kind == Kind::kFloat32 ? pb::FEATURE_TYPE_FLOAT32
                                                          : pb::FEATURE_TYPE_FLOAT64);
          auto* out = values->mutable_double_values()->mutable_values();
          out->Reserve(static_cast<int>(rows));
          for (size_t row = 0; row < static_cast<size_t>(rows); ++row) {
            out->AddAlreadyReserved(found(row) ? records[row].Double(index) : 0.0);
          }
          break;
        }
        case Kind::kBool: {
          column->set_type(pb::FEATURE_TYPE_BOOL);
          auto* out = values->mutable_bool_values()->mutable_values();
          out->Reserve(static_cast<int>(rows));
          for (size_t row = 0; row < static_cast<size_t>(rows); ++row) {
            out->AddAlreadyReserved(found(row) && records[row].Bool(index));
          }
          break;
        }
        case Kind::kString: {
          column->set_type(pb::FEATURE_TYPE_STRING);
          auto* out = values->mutable_string_values()->mutable_values();
          out->Reserve(static_cast<int>(rows));
          for (size_t row = 0; row < static_cast<size_t>(rows); ++row) {
            std::string_view text = found(row) ? records[row].Text(index) : std::string_view();
            out->Add(std::string(text));
          }
          break;
        }
      }
      for (size_t row = 0; row < static_cast<size_t>(rows); ++row) {
        if (found(row) && records[row].IsNull(index)) {
          column->add_null_rows(static_cast<uint32_t>(row));
        }
      }
    }
    metrics_.FamilyRead(layout.family, read_seconds);
    metrics_.Values(layout.family, counts, group.columns.size());
    if (newest != INT64_MIN) {
      metrics_.Staleness(layout.family, static_cast<double>(now_us - newest) / 1e6);
    }
  }
  status = grpc::Status::OK;
  return Outcome::kAnswered;
}

grpc::Status FeatureServiceImpl::Forward(const grpc::internal::RpcMethod& method,
                                         grpc::ServerContext* context,
                                         const grpc::ByteBuffer& request,
                                         grpc::ByteBuffer& response, bool sampled) {
  grpc::ClientContext client;
  ClientDeadline(context, client);
  // The backend logs exactly the calls sampled here, so the sample rate holds for all calls.
  if (sampled) client.AddMetadata("nbf-log-sample", "1");
  {
    std::lock_guard<std::mutex> lock(forwards_mutex_);
    if (grace_over_ >= 0) return Stopped();
    forwards_.insert(&client);
  }
  grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      backend_.get(), method, &client, request, &response);
  std::lock_guard<std::mutex> lock(forwards_mutex_);
  forwards_.erase(&client);
  if (grace_over_ >= 0 && status.error_code() == grpc::StatusCode::CANCELLED) return Stopped();
  return status;
}

void FeatureServiceImpl::GraceOver(double grace) {
  std::lock_guard<std::mutex> lock(forwards_mutex_);
  grace_over_.store(grace);
  StopReadsAt(Clock::now());
  for (grpc::ClientContext* client : forwards_) client->TryCancel();
}

grpc::Status FeatureServiceImpl::Stopped() const {
  std::ostringstream text;  // the grace as Python's "{:g}" writes it, as the other plane does
  text << "the server is stopping and its grace period (" << grace_over_.load()
       << " s) ended before this call finished; retry on another server";
  return {grpc::StatusCode::UNAVAILABLE, text.str()};
}

void FeatureServiceImpl::Account(const pb::GetOnlineFeaturesResponse& response) {
  for (const auto& block : response.families()) {
    std::array<uint64_t, 5> counts{};
    int64_t newest = INT64_MIN;
    for (int row = 0; row < block.statuses_size(); ++row) {
      auto status = static_cast<size_t>(block.statuses(row));
      if (status < counts.size()) ++counts[status];
      if ((status == 1 || status == 3) && row < block.event_time_us_size()) {
        newest = std::max(newest, block.event_time_us(row));
      }
    }
    metrics_.Values(block.family(), counts, static_cast<size_t>(block.features_size()));
    if (newest != INT64_MIN) {
      metrics_.Staleness(block.family(),
                         static_cast<double>(response.request_time_us() - newest) / 1e6);
    }
  }
}

template <typename Request>
grpc::Status FeatureServiceImpl::Relay(const char* method,
                                       const grpc::internal::RpcMethod& backend_method,
                                       grpc::ServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) {
  arrivals_.fetch_add(1, std::memory_order_relaxed);
  grpc::Status status = Authorize(context);
  if (!status.ok()) return status;
  InFlight in_flight(metrics_.in_flight());
  Timer timer;
  Request parsed;  // only checked: the backend gets the bytes as they came
  status = Parse(*request, parsed);
  if (status.ok()) {
    metrics_.Backend(method);
    status = Forward(backend_method, context, *request, *response);
  }
  metrics_.Call(method, CodeName(status.error_code()), timer.seconds());
  return status;
}

grpc::Status FeatureServiceImpl::ListFeatures(grpc::ServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) {
  return Relay<pb::ListFeaturesRequest>("ListFeatures", backend_list_, context, request,
                                        response);
}

grpc::Status FeatureServiceImpl::DescribeFamily(grpc::ServerContext* context,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) {
  return Relay<pb::DescribeFamilyRequest>("DescribeFamily", backend_describe_, context, request,
                                          response);
}

}  // namespace nbf
