// The handlers api.cc's table points at, one file per resource. Each runs after the table's
// checks (api.h, steps 1-6): it reads what only it knows (its parameters, its body), calls the
// operation, and shapes the answer.
#pragma once

#include "worker/admin/api.h"

namespace hookq::admin::handlers {

// api_status.cc
HttpReply status(Call& c);
HttpReply health(Call& c);
HttpReply slo(Call& c);
HttpReply destinations_health(Call& c);
HttpReply routes(Call& c);
HttpReply stats(Call& c);

// api_events.cc
HttpReply list_events(Call& c);
HttpReply get_event(Call& c);

// api_dead_letters.cc
HttpReply list_dead_letters(Call& c);
HttpReply dead_letter(Call& c);  // GET, DELETE
HttpReply retry_dead_letter(Call& c);

// api_breakers.cc
HttpReply list_breakers(Call& c);
HttpReply get_breaker(Call& c);
HttpReply reset_breaker(Call& c);

// api_replays.cc
HttpReply replays(Call& c);  // GET list, POST create or dry run
HttpReply get_replay(Call& c);
HttpReply cancel_replay(Call& c);
HttpReply resume_replay(Call& c);

// api_alerts.cc
HttpReply list_alerts(Call& c);
HttpReply list_alert_events(Call& c);
HttpReply silences(Call& c);  // GET list, POST create
HttpReply expire_silence(Call& c);

// api_pauses.cc
HttpReply list_pauses(Call& c);
HttpReply pause(Call& c);
HttpReply resume(Call& c);

// api_loops.cc
HttpReply list_loops(Call& c);
HttpReply clear_loops(Call& c);
HttpReply release_loops(Call& c);

}  // namespace hookq::admin::handlers
