// The bid-filtering API. `BidRequest`, `BidResponse` and `filter` keep the field ids, types and names
// of aws-samples/aws-rtb-intelligence-kit's IDL (tests/serve/original_api.thrift), so its clients work
// unchanged. Everything below "Additions" is this kit's; those clients never see it.

namespace java com.aik.filterapi
namespace py aik_filterapi

/**
 * Raw data required for filtering a bid request
 */
struct BidRequest {
  1: string bidId,
  2: i32 dayOfWeek,
  3: string hour,
  4: string regionId,
  5: string cityId,
  6: string domainId,
  7: string advertiserId,
  8: i64 biddingPrice,
  9: i64 payingPrice,
  10: string userAgent,
  11: i32 deviceTypeId
}

/**
 * The likelihood that bidding on the request leads to an impression
 */
struct BidResponse {
  1: double likelihoodToBid
}

// ---- Additions ----

/**
 * Likelihoods of a batch, in request order, all scored by the model named by modelVersion
 */
struct BidBatchResponse {
  1: list<double> likelihoodToBid,
  2: string modelVersion
}

/**
 * Readiness and the model being served. modelCheckAgeSeconds: seconds since the server last read
 * the model's parameters and artifacts successfully (-1 when it does not watch for new models).
 * Field 3 (the model's URI) is retired: clients are not told where the model is stored.
 */
struct HealthStatus {
  1: bool ready,
  2: string modelVersion,
  4: string modelLoadedAt,
  5: double modelLoadSeconds,
  6: i64 requestsServed,
  7: double uptimeSeconds,
  8: double modelCheckAgeSeconds
}

service BidRequestFilter {

  /**
   * The likelihood to bid for one request
   */
  BidResponse filter(1: BidRequest request)

  /**
   * Likelihoods for many requests in one round trip
   */
  BidBatchResponse filterBatch(1: list<BidRequest> requests)

  /**
   * Cheap readiness check: ready is false while the server drains on shutdown
   */
  HealthStatus health()
}
