-- wrk script: each connection waits WRK_DELAY_MS between its requests (a paced load).
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")

function delay()
   return delay_ms
end
