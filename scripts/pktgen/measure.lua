-- masq + pktgen-dpdk: load a profile (.pkt), send, measure, print, quit.
--
-- Run by scripts/pktgen/run-vhost.sh as `pktgen ... -- -f measure.lua`; the environment
-- says what to do:
--   MASQ_PKTGEN_PROFILE  path of the .pkt command file to load (range.pkt, storm.pkt, ...)
--   MASQ_PKTGEN_WARMUP   seconds of traffic before the window (default 2)
--   MASQ_PKTGEN_SECONDS  length of the measuring window in seconds (default 10)
--   MASQ_PKTGEN_RESULT   file to write the result line to (default: only printed)
--   MASQ_PKTGEN_REFILL   if 1, start port 0 again whenever it has sent its `set 0 count`
--                        packets. pktgen builds range-mode packets once per mbuf when a
--                        port starts (its range pool holds 24 576) and then resends those;
--                        each start builds the next ones. storm.pkt sets the count to the
--                        pool size, so with this every packet is a new flow.
--
-- Port 0 sends towards masqd's inside port; port 1 receives what masqd sends out of its
-- outside port. The rate is port 1's received packets over the window (cumulative port
-- counters read before and after), next to what port 0 sent in the same window.
-- (Only the built-in `pktgen` table is used: no Pktgen.lua needed.)

local function env_number(name, default)
    local v = tonumber(os.getenv(name) or "")
    if v == nil then return default end
    return v
end

local profile = os.getenv("MASQ_PKTGEN_PROFILE")
local warmup = env_number("MASQ_PKTGEN_WARMUP", 2)
local seconds = env_number("MASQ_PKTGEN_SECONDS", 10)
local result_file = os.getenv("MASQ_PKTGEN_RESULT")
local refill = env_number("MASQ_PKTGEN_REFILL", 0) == 1

local function counters()
    local s = pktgen.portStats("0,1", "port")
    return s[0].opackets, s[1].ipackets, s[1].ibytes, s[0].oerrors
end

pktgen.screen("off")
if profile == nil or profile == "" then
    print("measure.lua: MASQ_PKTGEN_PROFILE is not set")
    pktgen.quit()
    return
end
pktgen.load(profile)
pktgen.clr()

pktgen.start("0")
if warmup > 0 then pktgen.sleep(warmup) end
local tx0, rx0, rxb0 = counters()
if refill then
    local step_ms = 5
    for _ = 1, math.floor(seconds * 1000 / step_ms) do
        pktgen.delay(step_ms)
        if pktgen.isSending("0")[0] == "n" then pktgen.start("0") end
    end
else
    pktgen.sleep(seconds)
end
local tx1, rx1, rxb1, oerr = counters()
pktgen.stop("0")

local tx_pps = (tx1 - tx0) / seconds
local rx_pps = (rx1 - rx0) / seconds
-- bytes on the wire per received frame, with the 4 byte FCS pktgen's sizes include
local rx_frames = rx1 - rx0
local avg_frame = 0
if rx_frames > 0 then avg_frame = (rxb1 - rxb0) / rx_frames + 4 end
local line = string.format(
    '{"tool":"pktgen-dpdk","pktgen_version":"%s","profile":"%s","warmup_s":%d,"seconds":%d,"refill":%s,' ..
    '"tx_pps":%.0f,"rx_pps":%.0f,"rx_mpps":%.3f,"rx_gbps":%.3f,"avg_frame_bytes":%.0f,"loss_ratio":%.5f,"tx_errors":%d}',
    pktgen.info.Pktgen_Version or "?", profile:match("([^/]+)$"), warmup, seconds, tostring(refill),
    tx_pps, rx_pps, rx_pps / 1e6, rx_pps * (avg_frame + 20) * 8 / 1e9, avg_frame,
    (tx1 - tx0 > 0) and (1 - (rx1 - rx0) / (tx1 - tx0)) or 0, oerr)
print(line)
if result_file ~= nil and result_file ~= "" then
    local f = io.open(result_file, "w")
    f:write(line, "\n")
    f:close()
end
pktgen.quit()
