"""The ad-server emulator: replays inference rows as BidRequests against the filtering server."""
