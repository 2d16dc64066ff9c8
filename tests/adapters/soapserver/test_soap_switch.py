"""The operator's switch for the SOAP endpoint: ``[soap] enabled = false`` in node.toml.

Off, nothing of the endpoint is served on the local API's listener: a SOAP call, the WSDL and the
XSD all answer 404 ``SOAP_DISABLED`` (with a token or without), while the JSON API goes on. On (the default), the same requests reach it.
"""

from __future__ import annotations

import dataclasses

import pytest

from node.config import CONFIG_NAME, SoapSettings, load_config
from node.config_toml import dump_config
from tests.adapters.soapserver.soap_support import ENDPOINT, envelope, headers, run_soap
from tests.node.api.local_api_support import expect_error, make_env, still_serving


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_the_endpoint_and_its_wsdl_are_served_only_when_enabled(tmp_path, enabled):
    env = make_env(tmp_path)
    env.config = dataclasses.replace(env.config, soap=SoapSettings(enabled=enabled))

    async def scenario(client):
        wsdl = await client.get(ENDPOINT + "?wsdl")
        xsd = await client.get("/soap/v1/gwx-oa.xsd")
        call = await client.post(ENDPOINT, data=envelope("ListInbox", token=env.clerk_b),
                                 headers=headers("ListInbox"))
        if enabled:
            assert (wsdl.status, xsd.status, call.status) == (200, 200, 200)
            assert b"GwxOaService" in await wsdl.read()
        else:
            for response in (wsdl, xsd, call):
                await expect_error(response, 404, "SOAP_DISABLED")
            await expect_error(await client.get(ENDPOINT + "?wsdl", headers={"Authorization": "Bearer x"}), 404,
                               "SOAP_DISABLED")
        await still_serving(client)
    run_soap(env, scenario)


def test_the_switch_is_off_only_when_said_so(tmp_path):
    """Not written: on, and not written back (node.toml of older nodes stays as it was); the rest of
    [soap] is checked with the other sections in tests/node/test_config.py."""
    (tmp_path / CONFIG_NAME).write_text('node_id = "county-c"\n', "utf-8")
    assert load_config(tmp_path).soap.enabled is True
    assert "[soap]" not in dump_config(load_config(tmp_path))
