// FeatureService on the native data plane. GetOnlineFeatures requests that only read
// materialized values are answered here: references parsed, live versions and layouts from
// the catalog, every family read in one Redis round trip, values decoded into the response.
// Everything else goes to the Python server behind it, unchanged (the backend): listing and
// describing, on-demand families, request data, requests sampled for the served-vector log,
// and every request this path would refuse or cannot read, so errors and their messages are
// the Python server's own.
//
// The methods take the request's bytes, not a parsed message: bytes that do not parse are
// INVALID_ARGUMENT naming the message (gRPC's own parsing ended them INTERNAL with no text),
// and a request for the backend is forwarded as it came, never parsed and written again.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/impl/service_type.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "catalog.h"
#include "features.pb.h"
#include "metrics.h"
#include "redis_conn.h"

namespace nbf {

namespace pb = ::nbfeatures::serving::v1;

struct ServiceOptions {
  std::string prefix = "nbf:";
  RedisTarget redis;
  std::chrono::milliseconds redis_timeout{2000};
  std::chrono::milliseconds live_cache{500};
  int64_t max_entities = 1000;
  int64_t max_features = 200;
  int64_t max_request_bytes = 4 * 1024 * 1024;
  std::string token;  // empty: no token asked for
  double log_sample_rate = 0.0;
};

// nbfeatures.serving.v1.FeatureService with every method on raw bytes (grpc::ByteBuffer).
class FeatureServiceImpl final : public grpc::Service {
 public:
  FeatureServiceImpl(ServiceOptions options, std::shared_ptr<grpc::Channel> backend,
                     Metrics& metrics, std::function<void(bool)> set_health);

  grpc::Status GetOnlineFeatures(grpc::ServerContext* context, const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response);
  grpc::Status ListFeatures(grpc::ServerContext* context, const grpc::ByteBuffer* request,
                            grpc::ByteBuffer* response);
  grpc::Status DescribeFamily(grpc::ServerContext* context, const grpc::ByteBuffer* request,
                              grpc::ByteBuffer* response);

  // The grace period of a stop is over (`grace` seconds, named in the status): reads of Redis
  // give up (StopReadsAt) and calls waiting on the backend are cancelled, each ending
  // UNAVAILABLE with that reason rather than a bare CANCELLED when gRPC cuts them off.
  void GraceOver(double grace);
  // How many calls have reached a handler (a stop waits until this stays still).
  uint64_t Arrivals() const { return arrivals_.load(std::memory_order_relaxed); }

 private:
  enum class Outcome { kAnswered, kForward };

  grpc::Status Authorize(grpc::ServerContext* context) const;
  Outcome TryAnswer(grpc::ServerContext* context, const pb::GetOnlineFeaturesRequest& request,
                    pb::GetOnlineFeaturesResponse& response, grpc::Status& status);
  // The request's bytes to the backend, its answer's bytes back.
  grpc::Status Forward(const grpc::internal::RpcMethod& method, grpc::ServerContext* context,
                       const grpc::ByteBuffer& request, grpc::ByteBuffer& response,
                       bool sampled = false);
  void Account(const pb::GetOnlineFeaturesResponse& response);
  // A call answered by the backend alone (listing, describing): token, parsing, metrics.
  template <typename Request>
  grpc::Status Relay(const char* method, const grpc::internal::RpcMethod& backend_method,
                     grpc::ServerContext* context, const grpc::ByteBuffer* request,
                     grpc::ByteBuffer* response);
  grpc::Status Unreachable(const std::string& error);
  grpc::Status Stopped() const;
  RedisConnection& Connection();
  bool Sampled();

  ServiceOptions options_;
  std::shared_ptr<grpc::Channel> backend_;
  grpc::internal::RpcMethod backend_get_;
  grpc::internal::RpcMethod backend_list_;
  grpc::internal::RpcMethod backend_describe_;
  Metrics& metrics_;
  std::function<void(bool)> set_health_;
  Catalog catalog_;
  std::string expected_token_;
  // Calls in flight to the backend, so GraceOver can cancel them.
  std::mutex forwards_mutex_;
  std::set<grpc::ClientContext*> forwards_;
  std::atomic<double> grace_over_{-1};  // the grace period, once it is over
  std::atomic<uint64_t> arrivals_{0};
};

}  // namespace nbf
