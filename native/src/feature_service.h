// FeatureService on the native data plane. GetOnlineFeatures requests that only read
// materialized values are answered here: references parsed, live versions and layouts from
// the catalog, every family read in one Redis round trip, values decoded into the response.
// Everything else goes to the Python server behind it, unchanged (the backend): listing and
// describing, on-demand families, request data, requests sampled for the served-vector log,
// and every request this path would refuse or cannot read, so errors and their messages are
// the Python server's own.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "catalog.h"
#include "features.grpc.pb.h"
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

class FeatureServiceImpl final : public pb::FeatureService::Service {
 public:
  FeatureServiceImpl(ServiceOptions options, std::shared_ptr<grpc::Channel> backend,
                     Metrics& metrics, std::function<void(bool)> set_health);

  grpc::Status GetOnlineFeatures(grpc::ServerContext* context,
                                 const pb::GetOnlineFeaturesRequest* request,
                                 pb::GetOnlineFeaturesResponse* response) override;
  grpc::Status ListFeatures(grpc::ServerContext* context, const pb::ListFeaturesRequest* request,
                            pb::ListFeaturesResponse* response) override;
  grpc::Status DescribeFamily(grpc::ServerContext* context,
                              const pb::DescribeFamilyRequest* request,
                              pb::DescribeFamilyResponse* response) override;

 private:
  enum class Outcome { kAnswered, kForward };

  grpc::Status Authorize(grpc::ServerContext* context) const;
  Outcome TryAnswer(grpc::ServerContext* context, const pb::GetOnlineFeaturesRequest& request,
                    pb::GetOnlineFeaturesResponse& response, grpc::Status& status);
  grpc::Status Forward(grpc::ServerContext* context, const pb::GetOnlineFeaturesRequest& request,
                       pb::GetOnlineFeaturesResponse& response, bool sampled);
  void Account(const pb::GetOnlineFeaturesResponse& response);
  // A call answered by the backend alone (listing, describing): token, metrics, deadline.
  template <typename Call>
  grpc::Status Relay(const char* method, grpc::ServerContext* context, Call call);
  grpc::Status Unreachable(const std::string& error);
  RedisConnection& Connection();
  bool Sampled();

  ServiceOptions options_;
  std::unique_ptr<pb::FeatureService::Stub> backend_;
  Metrics& metrics_;
  std::function<void(bool)> set_health_;
  Catalog catalog_;
  std::string expected_token_;
};

}  // namespace nbf
