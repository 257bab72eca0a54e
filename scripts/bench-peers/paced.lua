-- wrk script for make bench-odds-service: every connection waits WRK_PACE_MS milliseconds
-- between a response and its next request, so both servers are offered about the same load
-- below saturation (32 connections, 1 ms: about 24,000 requests/s), and their latencies compare
-- at equal load instead of at each one's maximum.
local pace = tonumber(os.getenv("WRK_PACE_MS") or "1")

function delay()
    return pace
end
