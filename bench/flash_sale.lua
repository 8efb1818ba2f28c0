-- wrk script for bench/flash_sale.py: every request is a different rider redeeming the same campaign.
-- args: tokens file, campaign id, requests in all, wrk threads, done file, connections in all. Each thread takes its
-- own slice of the tokens and stops after its share of replies; the requests it sends past its share while the last
-- replies are on their way (one a connection at most) take tokens of their own after all the slices, so no rider
-- tries twice. done() prints the counts by status and the latency percentiles.
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  local share = math.floor(tonumber(args[3]) / tonumber(args[4]))
  first = wrk.thread:get("index") * share
  limit = share
  spare = tonumber(args[3]) + wrk.thread:get("index") * math.ceil(tonumber(args[6]) / tonumber(args[4]))
  sent, replies, created, conflicts, other = 0, 0, 0, 0, 0
  my_tokens = tokens
  body = '{"campaign_id": ' .. args[2] .. '}'
  done_file = args[5]
end

function request()
  sent = sent + 1
  local token
  if sent <= limit then token = my_tokens[first + sent] else token = my_tokens[spare + (sent - limit)] end
  return wrk.format("POST", "/api/v1/redemptions",
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  replies = replies + 1
  if status == 201 then created = created + 1
  elseif status == 409 then conflicts = conflicts + 1
  else other = other + 1 end
  if replies == limit then
    local marker = io.open(done_file, "a")
    marker:write("done\n")
    marker:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local c, k, o, r = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    c = c + thread:get("created"); k = k + thread:get("conflicts"); o = o + thread:get("other")
    r = r + thread:get("replies")
  end
  io.write(string.format("COUNT_replies %d\nCOUNT_created %d\nCOUNT_conflicts %d\nCOUNT_other %d\n", r, c, k, o))
  io.write(string.format("LAT_p50_ms %.2f\nLAT_p99_ms %.2f\nLAT_max_ms %.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
