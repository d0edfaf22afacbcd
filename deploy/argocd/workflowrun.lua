-- Argo CD health of an autoflow.dev WorkflowRun (resource.customizations.health.autoflow.dev_WorkflowRun).
-- Succeeded: Healthy. Failed: Degraded. Cancelled: Suspended, because someone stopped the run
-- on purpose: it is not a failure to page about, nor a success. Pending, Running, not taken
-- up yet, or being cancelled: Progressing. The phase summarizes the Succeeded condition.
local hs = { status = "Progressing", message = "Waiting for the operator to start the run" }
local status = obj.status or {}
local phase = status.phase
local message = status.message
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message or "The run succeeded"
elseif phase == "Failed" then
  hs.status = "Degraded"
  local reason = "Failed"
  for _, condition in ipairs(status.conditions or {}) do
    if condition.type == "Succeeded" and condition.reason ~= nil then
      reason = condition.reason
    end
  end
  hs.message = reason .. ": " .. (message or "the run failed")
elseif phase == "Cancelled" then
  hs.status = "Suspended"
  hs.message = message or "The run was cancelled"
elseif obj.spec ~= nil and obj.spec.cancel == true then
  hs.message = "The run is being cancelled"
elseif phase == "Running" then
  hs.message = "The runner is running"
elseif phase == "Pending" then
  hs.message = "Waiting for the runner to start"
end
return hs
