-- wrk script: a flood of failed logins (the real user, a wrong password), so every attempt
-- that gets past the rate limiter costs the gateway one argon2id verification.
-- Prints "status CODE COUNT" lines at the end, one per HTTP status seen (401 wrong password,
-- 503 hashing queue full, 429 rate limited).
wrk.method = "POST"
wrk.body = '{"username":"bench","password":"wrong"}'
wrk.headers["Content-Type"] = "application/json"

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  counts = {}
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts") or {}) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("status %d %d\n", status, n))
  end
end
