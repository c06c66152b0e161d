-- wrk script: HTTP/1.1 pipelining. Each write sends DEPTH (default 16) `GET /` requests back to
-- back; wrk counts every response.   wrk -s pipeline.lua URL -- 16
local depth = 16
local batch

init = function(args)
    depth = tonumber(args[1]) or depth
    local r = {}
    for i = 1, depth do
        r[i] = wrk.format(nil, "/")
    end
    batch = table.concat(r)
end

request = function()
    return batch
end
