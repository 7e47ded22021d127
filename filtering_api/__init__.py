"""What the filtering server and its clients share: the Thrift API, a client, and the StatsD sender.

The server (`filtering_server`) and the ad-server emulator (`ad_server_emulator`) both import this
package and nothing of each other, so the emulator's install (the `emulator` extra) needs neither numba
nor xgboost. Modules: `idl` (api.thrift loaded with thriftpy2), `client` (connect, wait until ready),
`metrics` (StatsD address, client and the off-hot-path aggregator both processes send through).
"""
