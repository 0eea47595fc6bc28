/*
 * health.c -- GET /healthz: is the daemon up and serving?
 *
 * No authentication, no store access: a load balancer or systemd may ask
 * often.  503 while stopping.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../daemon/corod.h"
#include "api.h"

void
api_healthz(struct http_request *req)
{
	json_t		*o;
	double		 up;

	up = (double)(time_now() - loop_started_at()) / USEC_PER_SEC;
	if (loop_stopping()) {
		o = json_pack("{s:s, s:s, s:f}", "status", "stopping",
		    "version", PACKAGE_VERSION, "uptime", up);
		http_respond_json(req, 503, o);
		return;
	}
	o = json_pack("{s:s, s:s, s:f, s:I, s:I}", "status", "ok",
	    "version", PACKAGE_VERSION, "uptime", up,
	    "running", (json_int_t)task_nrunning,
	    "in_memory", (json_int_t)task_count());
	http_respond_json(req, 200, o);
}
