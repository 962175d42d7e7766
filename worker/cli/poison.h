// hookqctl poison list|show|retry|delete: the elements set aside in hookq:{Q}:poison (undecodable,
// or webhooks PostgreSQL refused to record), and putting them back on their queue.
#pragma once

#include <string>
#include <vector>

#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

// An element's id: the first 16 hex digits of its SHA-256, stable while it sits in the list. A
// decodable element may also be named by its request id.
std::string poison_id(std::string_view element);

int poison_list(RedisConn& redis, const std::vector<std::string>& queues, int limit, bool json);
// `pg` may be null (PostgreSQL unreachable): the reason recorded there is then left out.
int poison_show(RedisConn& redis, Pg* pg, const std::vector<std::string>& queues,
                const std::string& id, bool json);
// Back onto the queue's consuming end, removed from the poison list in the same script, audited.
int poison_retry(Pg& pg, RedisConn& redis, const std::vector<std::string>& queues,
                 const std::vector<std::string>& ids, bool json);
int poison_delete(Pg& pg, RedisConn& redis, const std::vector<std::string>& queues,
                  const std::vector<std::string>& ids, bool json);

}  // namespace hookq::ctl
