/*
 * health.c -- GET /healthz: is the daemon up and serving?
 *
 * No authentication and no store access: a load balancer or systemd may
 * ask often.  503 while stopping.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../daemon/corod.h"
#include "../daemon/cgroup.h"
#include "api.h"

void
api_healthz(struct http_request *req)
{
	struct buf	 b = { NULL, 0, 0 };
	char		*body;
	size_t		 len;
	double		 up;

	up = (double)(time_now() - loop_started_at()) / USEC_PER_SEC;
	buf_printf(&b, "{\"status\":\"%s\",\"version\":\"%s\","
	    "\"uptime\":%.3f,\"running\":%zu,\"in_memory\":%zu,"
	    "\"exec_cgroup\":\"%s\"}",
	    loop_stopping() ? "stopping" : "ok", PACKAGE_VERSION, up,
	    task_nrunning, task_count(), cgroup_mode());
	body = buf_steal(&b, &len);
	http_respond_text(req, loop_stopping() ? 503 : 200,
	    "application/json", body, len);
}
