"""The bid-filtering server: scores BidRequests over Thrift with the published XGBoost model."""
