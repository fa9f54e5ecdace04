-- wrk: a unique X-Request-Id (and ?id=) per request.
-- Usage: WRK_DEPTH=16 wrk -s wrk_ids.lua URL
-- WRK_DEPTH > 1 pipelines: each write carries that many requests (wrk counts them in its
-- main Lua state, where init() does not run, hence an environment variable).
local counter = 0
local threads = {}

local depth = tonumber(os.getenv("WRK_DEPTH") or "1")

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function one()
  local rid = "w" .. (tid or 0) .. "-" .. counter
  counter = counter + 1
  local path = wrk.path
  local sep = string.find(path, "?", 1, true) and "&" or "?"
  return wrk.format("GET", path .. sep .. "id=" .. rid, { ["X-Request-Id"] = rid })
end

function request()
  if depth == 1 then
    return one()
  end
  local batch = {}
  for i = 1, depth do
    batch[i] = one()
  end
  return table.concat(batch)
end
