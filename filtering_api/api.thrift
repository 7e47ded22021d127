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
 * One arm of what the server serves: its name ("champion" without an experiment), the release that
 * answers it (the model version when the server reads the original parameters), that release's model
 * version, and its share of the traffic
 */
struct Arm {
  1: string arm,
  2: string release,
  3: string modelVersion,
  4: double share
}

/**
 * Likelihoods of a batch, in request order. modelVersion: the model that scored them (during an
 * experiment that split the batch, the arms' versions joined by "+"). arms: the arms that answered;
 * armOfRequest (only during an experiment): each request's arm, as an index into arms;
 * experiment: the running experiment's name
 */
struct BidBatchResponse {
  1: list<double> likelihoodToBid,
  2: string modelVersion,
  3: optional list<Arm> arms,
  4: optional list<i16> armOfRequest,
  5: optional string experiment
}

/**
 * The likelihood of one request and who answered it (filterArm)
 */
struct ArmResponse {
  1: double likelihoodToBid,
  2: Arm arm,
  3: optional string experiment
}

/**
 * One string field of many requests, in one of two encodings. Dictionary (values and codes): row i's
 * value is values[codes[i]]; codes holds one little-endian i32 per row, -1 for a missing value. For
 * fields of few distinct values (the server maps each distinct value once). Plain (data and offsets):
 * the rows' UTF-8 bytes concatenated in data, row i being data[offsets[i]:offsets[i+1]]; offsets holds
 * rows + 1 little-endian i32s, the first 0 and the last the length of data; no missing values. For
 * fields whose every value differs (bidId): no string object per row on either side.
 */
struct StringColumn {
  1: list<string> values,
  2: binary codes,
  3: binary data,
  4: binary offsets
}

/**
 * Many BidRequests as columns, field ids as in BidRequest. Integer fields are little-endian arrays
 * (i32: 4 bytes per row, i64: 8), in which the type's smallest value (-2^31, -2^63) marks a missing
 * value (as R's NA_integer_); string fields are StringColumns. rows is the number of requests; every
 * column sent has exactly one entry per row, and a column left out is missing in every row.
 */
struct BidColumns {
  1: StringColumn bidId,
  2: binary dayOfWeek,
  3: StringColumn hour,
  4: StringColumn regionId,
  5: StringColumn cityId,
  6: StringColumn domainId,
  7: StringColumn advertiserId,
  8: binary biddingPrice,
  9: binary payingPrice,
  10: StringColumn userAgent,
  11: binary deviceTypeId,
  12: i32 rows
}

/**
 * Likelihoods of a BidColumns call: one little-endian float64 per row, in row order, scored by the
 * model named by modelVersion. During an experiment (only then; without one the reply is fields 1-2)
 * each row is scored by the arm its bidId is assigned to: modelVersion joins the arms' versions with
 * "+", arms lists the arms that answered, armOfRequest holds one little-endian i16 per row, an index
 * into arms, and experiment names the experiment (as BidBatchResponse's fields 3-5). A row without a
 * bidId (or a call without the bidId column) is assigned as the empty bidId
 */
struct BidColumnsResponse {
  1: binary likelihoodToBid,
  2: string modelVersion,
  3: optional list<Arm> arms,
  4: optional binary armOfRequest,
  5: optional string experiment
}

/**
 * Readiness and the model being served (the champion's; arms: every arm with its release and share,
 * experiment: the running experiment's name). modelCheckAgeSeconds: seconds since the server last read
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
  8: double modelCheckAgeSeconds,
  9: optional string experiment,
  10: optional list<Arm> arms
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
   * Likelihoods for many requests sent as columns (decoded without an object per request)
   */
  BidColumnsResponse filterColumns(1: BidColumns columns)

  /**
   * One request scored once per candidate advertiser: likelihoodToBid[i] is what filter answers for
   * the request with advertiserId = advertiserIds[i] (the request's own advertiserId is not used)
   */
  BidBatchResponse filterAdvertisers(1: BidRequest request, 2: list<string> advertiserIds)

  /**
   * filter, also saying which arm and release answered (the same likelihood filter returns)
   */
  ArmResponse filterArm(1: BidRequest request)

  /**
   * Cheap readiness check: ready is false while the server drains on shutdown
   */
  HealthStatus health()
}
