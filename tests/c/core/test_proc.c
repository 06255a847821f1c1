/* test_proc.c — child processes through the runtime: exit codes and
   signals, feeding stdin, the process-group kill on timeout, cancel of a
   running proc.run, and what a dropped handle leaves behind. */
#define _GNU_SOURCE
#include <signal.h>
#include "harness.h"
#include "tap.h"

int main(void)
{
	runtime_t *rt = rt_new();
	(void)luaL_dostring(rt->L, "core = require 'procy.core' proc = require 'procy.proc'");

	is_str(rt_run(rt, "local r = proc.run({'sh', '-c', 'echo out; echo err >&2; exit 3'}) "
	                  "return r.code .. '|' .. r.stdout .. '|' .. r.stderr"),
	       "3|out\n|err\n", "exit code, stdout and stderr");
	is_str(rt_run(rt, "local r = proc.run({'sh', '-c', 'kill -USR1 $$'}) return r.code .. '/' .. r.signal"),
	       "138/10", "death by signal: code 128+N and the signal");
	is_str(rt_run(rt, "local s = string.rep('0123456789', 200000) "
	                  "local r = proc.run({'cat'}, {stdin = s}) return tostring(r.stdout == s)"),
	       "true", "2 MB through stdin and back");
	is_str(rt_run(rt, "local r = proc.run({'sh', '-c', 'echo $A-$HOME'}, {env = {A = 'x', HOME = false}}) return r.stdout"),
	       "x-\n", "env sets and removes variables");
	is_str(rt_run(rt, "local r = proc.run({'pwd'}, {cwd = '/tmp'}) return r.stdout"), "/tmp\n", "cwd");
	is_str(rt_run(rt, "local r = proc.run({'sh', '-c', 'echo a; echo b >&2'}, {stderr = 'stdout'}) return r.stdout"),
	       "a\nb\n", "stderr merged into stdout");
	is_str(rt_run(rt, "local r = proc.run({'sh', '-c', 'head -c 100000 /dev/zero'}, {max_output = 1000}) "
	                  "return #r.stdout .. tostring(r.truncated)"), "1000true", "max_output bounds what is kept");
	is_str(rt_run(rt, "return select(3, proc.run({'/nonexistent/x'}))"), "ENOENT", "a missing program");

	/* cancel: the task running proc.run goes away, the child must too */
	is_str(rt_run(rt, "local pidfile = os.tmpname() "
	                  "local t = core.spawn(function() return proc.run({'sh', '-c', 'echo $$ > ' .. pidfile .. '; exec sleep 30'}) end) "
	                  "core.sleep(0.2) core.cancel(t) core.sleep(0.3) "
	                  "local pid = io.open(pidfile):read('n') os.remove(pidfile) "
	                  "local st = io.open('/proc/' .. pid .. '/stat') "
	                  "local state = st and st:read('a'):match('^%d+ %b() (%a)') "
	                  "return tostring(state == nil or state == 'Z')"),
	       "true", "cancelling proc.run's task kills the child");

	/* p:write / p:close_stdin / lines */
	is_str(rt_run(rt, "local p = proc.spawn({'cat'}, {stdin = true}) "
	                  "local it = p:lines() local got = {} "
	                  "for i = 1, 3 do p:write('line ' .. i .. '\\n') got[#got+1] = it() end "
	                  "p:close_stdin() got[#got+1] = tostring(it()) "
	                  "return table.concat(got, ',') .. ' ' .. p:wait().code"),
	       "line 1,line 2,line 3,nil 0", "an interactive child: write a line, read a line");
	is_str(rt_run(rt, "local p = proc.spawn({'sleep', '30'}) p:kill('INT') local r = p:wait(5) return r.signal"),
	       "2", "kill by signal name");
	is_str(rt_run(rt, "local p = proc.spawn({'sleep', '30'}) local r, err = p:wait(0.05) p:kill('KILL') "
	                  "return err .. ' ' .. p:wait(5).signal"),
	       "ETIMEDOUT: process wait timed out after 0.05 s 9", "a wait timeout leaves the child running");

	/* a dropped handle stops its child */
	is_str(rt_run(rt, "local p = proc.spawn({'sleep', '30'}) PID = p:pid() p = nil collectgarbage() collectgarbage() "
	                  "core.sleep(0.3) local st = io.open('/proc/' .. PID .. '/stat') "
	                  "local state = st and st:read('a'):match('^%d+ %b() (%a)') return tostring(state == nil or state == 'Z')"),
	       "true", "a collected handle terminates its child");

	rt_free(rt);
	return tap_done();
}
