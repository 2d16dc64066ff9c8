"""The console's Chinese words for what the node says in English: roles, and a sentence per error
code (or, for a code not listed, per kind). Templates show these; codes stay as they are beside them."""

from __future__ import annotations

from pki.errors import ErrorKind, GwxError

ROLE_LABEL = {"clerk": "收发员", "supervisor": "督办人员", "operator": "系统管理员"}

ERROR_TEXT: dict[str, str] = {
    "CONSOLE_SIGN_IN_REFUSED": "用户名或密码错误。",
    "CONSOLE_ACCOUNT_LOCKED": "密码连续输错次数过多，账户已暂时锁定。",
    "CONSOLE_BUSY": "同时登录的人过多，请稍后再试。",
    "CONSOLE_ACCOUNT_DISABLED": "该账户已被停用，请联系本节点的系统管理员。",
    "CONSOLE_SIGN_IN_NEEDED": "请先登录。",
    "CONSOLE_SESSION_EXPIRED": "登录已过期，请重新登录。",
    "CONSOLE_CSRF": "表单已失效或来源不明，操作未执行。请返回页面刷新后重试。",
    "CONSOLE_BAD_ORIGIN": "请求来自其他网站，操作未执行。",
    "CONSOLE_BAD_FORM": "提交的表单无法处理，操作未执行。",
    "CONSOLE_FORM_TOO_LARGE": "提交的内容过大，操作未执行。",
    "CONSOLE_NO_SUCH_PAGE": "没有这个页面。",
    "CONSOLE_WRONG_ROLE": "您的账户角色不能使用此页面。",
    "API_FORBIDDEN": "您无权进行此操作。",
    "DOC_RECALLED": "该公文已被发文单位撤回，正文和附件不再提供。",
    "DOC_NO_ELIGIBLE_RECIPIENT": "没有可以执行此操作的收文单位。",
    "STATE_ILLEGAL_TRANSITION": "公文当前的状态不允许此操作（例如已签收的公文不能退回）。",
    "ARCHIVE_DOC_NOT_FINISHED": "公文尚未办结（仍有单位未签收、退回或撤回），未归档。如确需提前归档，请填写归档理由。",
    "ARCHIVE_NO_TSA": "暂时无法取得可信时间戳（未配置或无法连接时间戳服务），未归档。请联系系统管理员。",
}

KIND_TEXT: dict[ErrorKind, str] = {
    ErrorKind.INVALID_INPUT: "输入的内容有误，操作未执行。",
    ErrorKind.VERIFICATION_FAILED: "验证未通过。",
    ErrorKind.UNAUTHENTICATED: "请先登录。",
    ErrorKind.FORBIDDEN: "您无权进行此操作。",
    ErrorKind.NOT_FOUND: "未找到该公文或页面。",
    ErrorKind.CONFLICT: "公文当前的状态不允许此操作。",
    ErrorKind.TRANSIENT: "节点暂时无法处理，请稍后重试。",
    ErrorKind.INTERNAL: "节点内部错误，请联系系统管理员（日志中有此请求的编号）。",
}


def error_text(error: GwxError) -> str:
    return ERROR_TEXT.get(error.code) or KIND_TEXT.get(error.kind, "操作未执行。")


# The seal verification report (exchange_protocol.package_verify) in plain words: for each check,
# what was checked, and what passing or failing means for the clerk.
CHECK_WORDS: dict[str, tuple[str, str, str]] = {
    "structure": ("公文包的结构", "完整", "不完整"),
    "manifest_signature": ("发文方的数字签名", "有效", "无效"),
    "digests": ("正文、附件和元数据", "与盖章时一致，未被改动", "与盖章时不一致，可能被改动"),
    "metadata": ("公文元数据（标题、发文字号、主送抄送等）", "符合规范", "不符合规范"),
    "pdf_seal": ("正文 PDF 上的电子签章", "有效", "无效"),
    "ofd_seal": ("正文 OFD 中的电子签章（GB/T 38540）", "有效，正文盖章后未被改动", "无效"),
    "seal": ("电子印章", "由可信的制章机构制作，属于发文机关", "无效"),
    "timestamp": ("可信时间戳", "有效", "无效"),
}


def report_lines(report: dict) -> list[dict[str, str]]:
    """One line per check: what, the verdict in words, and the reason when it failed."""
    lines = []
    for check in report.get("checks", []):
        what, good, bad = CHECK_WORDS.get(check.get("name", ""), (check.get("name", ""), "通过", "未通过"))
        status = check.get("status")
        verdict = {"pass": good, "fail": bad, "absent": "没有（发文方未加）", "skipped": "尚未检查"}.get(status, status)
        lines.append({"what": what, "verdict": verdict, "status": status or "",
                      "why": check.get("message", "") if status == "fail" else ""})
    return lines
