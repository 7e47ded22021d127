"""The Thrift API (api.thrift) loaded with thriftpy2: the structs, and the service the server implements."""

from __future__ import annotations

from pathlib import Path

import thriftpy2

IDL_PATH = Path(__file__).with_name("api.thrift")

#: The module thriftpy2 builds from the IDL (structs as classes, the service with its args/results).
api = thriftpy2.load(str(IDL_PATH), module_name="aik_filterapi_thrift")

BidRequest = api.BidRequest
BidResponse = api.BidResponse
BidBatchResponse = api.BidBatchResponse
StringColumn = api.StringColumn
BidColumns = api.BidColumns
BidColumnsResponse = api.BidColumnsResponse
HealthStatus = api.HealthStatus
Arm = api.Arm
ArmResponse = api.ArmResponse
BidRequestFilter = api.BidRequestFilter
