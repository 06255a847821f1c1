-- procy.tunnel: an ssh port forward to the machine that serves the proxy
-- model, for as long as procy runs. `--tunnel HOST` (or the `tunnel`
-- setting) forwards model.url's local port to the same port on HOST's
-- loopback (model.remote_port to choose another):
--
--   ssh -N -o ExitOnForwardFailure=yes -o ServerAliveInterval=30 -o BatchMode=yes
--       -L 127.0.0.1:18000:127.0.0.1:8000 HOST
--
-- argv only: the host and ports are arguments, never shell text.

local core = require "procy.core"
local proc = require "procy.proc"

local M = {}

-- argv(host, model) -> the ssh command, or nil, err
function M.argv(host, model)
  if type(host) ~= "string" or host == "" or host:sub(1, 1) == "-" then
    return nil, "EINVAL: --tunnel needs a host name (not '" .. tostring(host) .. "')"
  end
  local url = (model or {}).url or "http://127.0.0.1:18000"
  local lport = tonumber(url:match("^%a+://[^/:]+:(%d+)")) or 18000
  local rport = tonumber((model or {}).remote_port) or 8000
  return { "ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=30", "-o", "BatchMode=yes",
    "-L", ("127.0.0.1:%d:127.0.0.1:%d"):format(lport, rport), "--", host }
end

-- start(host, model) -> a handle to close (also <close>), or nil, err, code.
-- Waits a moment so an ssh that fails at once (unknown host, port taken)
-- is reported here.
function M.start(host, model)
  local argv, err = M.argv(host, model)
  if not argv then return core.wrap("tunnel", err, "EINVAL") end
  local p, perr, code = proc.spawn(argv, { stdout = false, stderr = "pipe" })
  if not p then return core.wrap("the tunnel's ssh did not start", perr, code) end
  local r = p:wait(1.0)
  if r then
    return nil, ("ETUNNEL: ssh to %s exited with %d: %s"):format(host, r.code, (r.stderr or ""):gsub("%s+$", "")),
      "ETUNNEL"
  end
  core.log("info", ("tunnel: %s"):format(table.concat(argv, " ")))
  return p
end

return M
