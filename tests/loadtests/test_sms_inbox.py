"""The load test's SMS inbox (loadtests/sms.py) against log lines written by the platform's own logging
setup: a code is found by the request id that asked for it, also when that id holds a phone-shaped run
of digits (the logging filter used to mask it, which made ~1 sign-in in 1,000 fail)."""

from __future__ import annotations

import importlib.util
import logging
import sys
import uuid

from utilis_shared import devstack
from utilis_shared.context import request_id_var


def _sms_module():
    path = devstack.REPO_ROOT / "loadtests" / "sms.py"
    spec = importlib.util.spec_from_file_location("loadtests_sms", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _gateway_logger(path):
    """The development SMS adapter's logger with the platform's JSON handler, writing to ``path``."""
    from utilis_shared import logging as platform_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    platform_logging.configure_logging("gateway")  # the services' own set-up, then the root as it was
    stdout_handler = root.handlers[0]
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(stdout_handler.formatter)
    for f in stdout_handler.filters:
        handler.addFilter(f)
    logger = logging.getLogger("gateway.adapters.sms.test")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


def test_codes_are_found_by_request_id_even_with_a_phone_shaped_run_in_it(tmp_path):
    sms = _sms_module()
    log_file = tmp_path / "gateway-api.log"
    log_file.write_text("")
    inbox = sms.SmsInbox(log_file)
    inbox.close()  # read by hand below, no greenlet
    logger, handler = _gateway_logger(log_file)
    plain = str(uuid.uuid4()).replace("1", "a")  # no phone-shaped digits
    phone_shaped = "1b14a182-8074-4185-9fd7-0cf6b161dbec"  # "182-8074-4185" looks like a mobile number
    try:
        for request_id, code in ((plain, "123456"), (phone_shaped, "654321")):
            token = request_id_var.set(request_id)
            logger.info(
                "sms code sent (development: not really)", extra={"phone": "150****0000", "code": code}
            )
            request_id_var.reset(token)
        handler.flush()
    finally:
        handler.close()
    assert phone_shaped in log_file.read_text()  # a UUID id is written whole
    inbox.read_new()
    assert inbox.code_for(plain, within=0) == "123456"
    assert inbox.code_for(phone_shaped, within=0) == "654321"
    assert inbox.code_for(str(uuid.uuid4()), within=0) is None and inbox.lost
