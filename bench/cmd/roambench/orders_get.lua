-- wrk script for orders.Get: POST {"id": ORDER_ID} with a JSON content type.
-- roambench embeds this file and sets ORDER_ID; to run it by hand:
--
--   ORDER_ID=<id> wrk -t2 -c32 -d5s --latency \
--     -s bench/cmd/roambench/orders_get.lua \
--     http://127.0.0.1:PORT/v1/apps/orders/methods/Get
local id = os.getenv("ORDER_ID")
if id == nil or id == "" then
  error("set ORDER_ID to the id of an existing order")
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"id":"' .. id .. '"}'
