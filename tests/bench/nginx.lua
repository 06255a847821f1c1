-- nginx.lua — what the benchmarks that compare procy with nginx share:
-- its configurations (the proxy as Debian ships it, and tuned), an nginx
-- upstream with a fixed small answer, starting one, and a free port.
-- nginx as Debian ships it: worker_processes auto, an access log, plain
-- proxy_pass (HTTP/1.0 and a new connection to the upstream per request);
-- tuned for proxying: kept-alive upstream connections, no log.
local core = require "procy.core"
local proc = require "procy.proc"
local json = require "procy.json"

local M = {}

function M.proxy_conf(dir, upstream_port, proxy_port, tuned)
  return ([[
worker_processes auto;
daemon off;
pid %s/nginx-%d.pid;
error_log %s/nginx-error.log warn;
events { worker_connections 768; }
http {
  access_log %s;
  client_body_temp_path %s;
  proxy_temp_path %s;
  upstream up { server 127.0.0.1:%d; %s }
  server {
    listen 127.0.0.1:%d;
    location / {
      proxy_pass http://up;
      %s
    }
  }
}
]]):format(dir, proxy_port, dir, tuned and "off" or (dir .. "/access.log"), dir, dir, upstream_port,
    tuned and "keepalive 64;" or "", proxy_port,
    tuned and 'proxy_http_version 1.1; proxy_set_header Connection "";' or "")
end

-- an upstream answering every request with one small Messages answer
function M.upstream_conf(dir, port)
  local answer = json.encode { id = "msg_bench", type = "message", role = "assistant", model = "claude-haiku-4-5",
    content = { { type = "text", text = "ok" } }, stop_reason = "end_turn",
    usage = { input_tokens = 12, output_tokens = 1 } }
  return ([[
worker_processes 1;
daemon off;
pid %s/upstream.pid;
error_log %s/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %s;
  server {
    listen 127.0.0.1:%d;
    keepalive_requests 1000000;
    location / { default_type application/json; return 200 '%s'; }
  }
}
]]):format(dir, dir, dir, port, answer)
end

-- start(dir, conf, name) -> the nginx process, running conf
function M.start(dir, conf, name)
  local file = dir .. "/" .. name .. ".conf"
  local f = assert(io.open(file, "w"))
  f:write(conf)
  f:close()
  local p = assert(proc.spawn({ "nginx", "-c", file, "-p", dir }, { stdout = false, stderr = false }))
  core.sleep(0.3)
  return p
end

function M.free_port()
  local p = assert(proc.run { "python3", "-c", "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])" })
  return tonumber(p.stdout)
end

-- have() -> whether wrk and nginx are installed
function M.have()
  local r = proc.run { "sh", "-c", "command -v wrk && command -v nginx" }
  return r and r.code == 0
end

return M
