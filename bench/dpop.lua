-- wrk script: a new DPoP proof on every request, the next line of $PROOFS_FILE (made by
-- examples/dpop_proofs.rs); the DPoP-bound token comes with `-H "Authorization: DPoP …"`.
-- The proof goes into wrk.headers, which also hold wrk's Host with the port: the proof's htu
-- names it. Out of proofs, the file starts over: the gateway refuses those repeats with 401,
-- which wrk counts as non-2xx.
local proofs = assert(io.open(os.getenv("PROOFS_FILE")))
request = function()
  local proof = proofs:read("*l")
  if not proof then
    proofs:seek("set")
    proof = proofs:read("*l")
  end
  wrk.headers["DPoP"] = proof
  return wrk.format()
end
