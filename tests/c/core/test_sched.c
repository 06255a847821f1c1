/* test_sched.c — tasks and ops through the C runtime: concurrency, joins,
   cancel (with <close>), errors, deadlock detection, the run-limit hook
   and shutdown. */
#include "harness.h"
#include "tap.h"

static void stop_sched(loop_t *loop, loop_timer *t)
{
	(void)loop;
	sched_stop(t->data);
}

int main(void)
{
	runtime_t *rt = rt_new();
	(void)luaL_dostring(rt->L, "core = require 'procy.core'");

	is_str(rt_run(rt, "local t0 = core.now() "
	                  "local a = core.spawn(function() core.sleep(0.1) return 'a' end) "
	                  "local b = core.spawn(function() core.sleep(0.1) return 'b' end) "
	                  "local x, y = core.await(a), core.await(b) "
	                  "return x .. y .. tostring(core.now() - t0 < 0.19)"),
	       "abtrue", "two sleeping tasks overlap");
	is_str(rt_run(rt, "local log = {} "
	                  "local a = core.spawn(function() for i = 1, 3 do log[#log+1] = 'a' .. i coroutine.yield() end end) "
	                  "local b = core.spawn(function() for i = 1, 3 do log[#log+1] = 'b' .. i core.yield() end end) "
	                  "core.await(a) core.await(b) return table.concat(log, ' ')"),
	       "a1 b1 a2 b2 a3 b3", "yield lets the other ready tasks run, in order");
	is_str(rt_run(rt, "local t = core.spawn(function() core.sleep(0.05) return 42 end) "
	                  "local j1 = core.spawn(function() return core.await(t) end) "
	                  "local j2 = core.spawn(function() return core.await(t) end) "
	                  "return core.await(j1) + core.await(j2) + core.await(t)"),
	       "126", "several tasks can wait for one task, and its results stay");
	is_str(rt_run(rt, "local op = core.timer(0) core.sleep(0.02) return tostring(core.await(op))"),
	       "true", "an op that completed before the await keeps its results");
	is_str(rt_run(rt, "local closed = {} "
	                  "local t = core.spawn(function() "
	                  "  local a <close> = setmetatable({}, {__close = function() closed[#closed+1] = 'a' end}) "
	                  "  local b <close> = setmetatable({}, {__close = function() closed[#closed+1] = 'b' end}) "
	                  "  core.sleep(60) end) "
	                  "core.sleep(0.01) local was = core.cancel(t) "
	                  "local r, err, code = core.await(t) "
	                  "return tostring(was) .. ' ' .. table.concat(closed, '') .. ' ' .. code .. ' ' .. t:status() .. ' ' .. tostring(core.cancel(t))"),
	       "true ba ECANCELED cancelled false", "cancel closes pending <close> variables in reverse order");
	is_str(rt_run(rt, "local closed = false "
	                  "local t = core.spawn(function() "
	                  "  local a <close> = setmetatable({}, {__close = function() closed = true end}) "
	                  "  core.cancel(core.current()) error('not reached') end) "
	                  "return select(3, core.await(t)) .. tostring(closed)"),
	       "ECANCELEDtrue", "a task can cancel itself");
	is_str(rt_run(rt, "local t = core.spawn(function() error({}) end) "
	                  "local other = core.spawn(function() core.sleep(0.01) return 'alive' end) "
	                  "local r, err = core.await(t) return err .. ' / ' .. core.await(other)"),
	       "ETASK: (error object is a table value) / alive", "a failing task ends alone");
	is_str(rt_run(rt, "local co = coroutine.wrap(function() return core.sleep(0.01) end) "
	                  "local ok, err = pcall(co) return err"),
	       "[string \"local co = coroutine.wrap(function() return c...\"]:1: "
	       "sleep: called from a nested coroutine; only the task itself can wait", "await in a nested coroutine raises");
	is_str(rt_run(rt, "local ok, err = pcall(table.sort, {1, 2, 3}, function(a, b) core.sleep(0) return a < b end) return err"),
	       "[string \"local ok, err = pcall(table.sort, {1, 2, 3}, ...\"]:1: "
	       "sleep: cannot wait here (inside a metamethod, a C iterator or db:transaction)", "await where Lua cannot yield raises");
	is_str(rt_run(rt, "return select(2, core.await(core.timer(5), 0.02))"), "ETIMEDOUT: timer timed out after 0.02 s",
	       "await timeout");
	is_str(rt_run(rt, "local t = core.spawn(function() core.set_run_limit(0.05) local x = 0 while true do x = x + 1 end end) "
	                  "local r, err = core.await(t) core.set_run_limit(10) return err:match('ran for more than 0.05 s without yielding') ~= nil"),
	       "true", "a task that never yields is stopped by the hook");
	is_str(rt_run(rt, "return #core.tasks() .. tostring(core.current():status())"), "1running", "tasks() and current()");

	/* deadlock: two tasks wait for each other and nothing else is pending */
	rt->exit_code = 0;
	rt_run(rt, "local a, b a = core.spawn(function() core.sleep(0) return core.await(b) end) "
	           "b = core.spawn(function() core.sleep(0) return core.await(a) end) "
	           "return core.await(a)");
	is_int(rt->exit_code, 1, "a deadlock is reported and ends the tasks");
	is_int(sched_live(rt), 0, "no task left after the deadlock");

	/* shutdown closes what is still waiting */
	(void)luaL_dostring(rt->L, "CLOSED = false core.spawn(function() "
	                     "local x <close> = setmetatable({}, {__close = function() CLOSED = true end}) core.sleep(100) end)");
	loop_timer stop;
	loop_timer_init(&stop);
	loop_timer_start(rt->loop, &stop, 50000000, stop_sched, rt);
	sched_run(rt);
	is_int(sched_live(rt), 1, "one task still waiting before shutdown");
	sched_free(rt);
	lua_getglobal(rt->L, "CLOSED");
	ok(lua_toboolean(rt->L, -1), "sched_free cancels live tasks and runs their <close>");
	lua_close(rt->L);
	loop_free(rt->loop);
	free(rt);
	return tap_done();
}
