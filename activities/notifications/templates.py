# ruff: noqa: RUF001 - Chinese text is written with full-width punctuation, as it should be
"""The message texts per template and locale, and their rendering.

Rendering fills a template's `{placeholders}` from `NotificationInput.params`; `order_id` is
always the input's own. A placeholder the workflow did not pass renders as "—" and is named in
the log line's `missing_params`: a message is never lost to a missing value.
"""

from collections.abc import Mapping
from typing import Final, Literal, NamedTuple

from models.notification import Template

Locale = Literal["zh", "en"]

MISSING: Final = "—"


# Messages that name the technician coming to the door: the delivery fills in
# `technician_name` from the registry, so the name never enters the order's history.
NAMING_THE_TECHNICIAN: Final = frozenset(
    {Template.TECHNICIAN_ASSIGNED, Template.APPOINTMENT_REMINDER}
)


class Wording(NamedTuple):
    subject: str
    body: str


TEMPLATES: Final[Mapping[Template, Mapping[Locale, Wording]]] = {
    # customer
    Template.BOOKING_CONFIRMED: {
        "zh": Wording(
            "报修已受理",
            "您的报修单 {order_id} 已受理，我们正在为您安排维修师傅，请保持电话畅通。",
        ),
        "en": Wording(
            "Repair request received",
            "Your repair order {order_id} has been received. We are arranging a technician"
            " for you; please keep your phone on.",
        ),
    },
    Template.TECHNICIAN_ASSIGNED: {
        "zh": Wording(
            "已为您安排维修师傅",
            "您的报修单 {order_id} 已由 {technician_name} 师傅（工号 {technician_id}）接单，"
            "师傅将尽快与您联系，确认上门时间。上门时请核对师傅的工号。",
        ),
        "en": Wording(
            "A technician is on your job",
            "{technician_name} (work ID {technician_id}) has taken repair order {order_id} and"
            " will contact you soon to agree a visit time. Please check the work ID at the door.",
        ),
    },
    Template.APPOINTMENT_CONFIRMED: {
        "zh": Wording(
            "上门时间已确认",
            "您的报修单 {order_id} 已预约上门，时间为 {window}，届时请确保家中有人。",
        ),
        "en": Wording(
            "Visit booked",
            "The technician will come for repair order {order_id} during {window}."
            " Please make sure someone is at home.",
        ),
    },
    Template.APPOINTMENT_CONFIRMED_WITH_FEE: {
        "zh": Wording(
            "上门时间已确认",
            "您的报修单 {order_id} 已预约上门，时间为 {window}，届时请确保家中有人。"
            "如此后取消，将收取上门费 {fee}。",
        ),
        "en": Wording(
            "Visit booked",
            "The technician will come for repair order {order_id} during {window}."
            " Please make sure someone is at home. Cancelling from now on costs the visit fee"
            " of {fee}.",
        ),
    },
    Template.APPOINTMENT_REMINDER: {
        "zh": Wording(
            "明日上门提醒",
            "提醒您：报修单 {order_id} 的维修师傅 {technician_name}（工号 {technician_id}）"
            "将于 {window} 上门，届时请确保家中有人。如需改约，请尽早联系我们。",
        ),
        "en": Wording(
            "Your visit is tomorrow",
            "A reminder: {technician_name} (work ID {technician_id}) comes for repair order"
            " {order_id} during {window}. Please make sure someone is at home, or contact us"
            " soon to change the time.",
        ),
    },
    Template.DELAY: {
        "zh": Wording(
            "上门时间延误",
            "非常抱歉，您的报修单 {order_id} 的维修师傅未能按约定时间上门。"
            "我们正在督促跟进，会尽快与您联系。",
        ),
        "en": Wording(
            "Your visit is running late",
            "We are sorry: the technician for repair order {order_id} has not arrived on time."
            " We are following up and will contact you shortly.",
        ),
    },
    Template.QUOTE_TO_APPROVE: {
        "zh": Wording(
            "维修报价待您确认",
            "您的报修单 {order_id} 经师傅检测需收费维修，报价合计 {total}。"
            "请确认是否同意维修，您同意之前不会进行任何收费项目。",
        ),
        "en": Wording(
            "Please approve the quote",
            "Repair order {order_id} needs chargeable work; the quote comes to {total}."
            " Please approve or decline it. No chargeable work is done before you approve.",
        ),
    },
    Template.PARTS_AWAITED: {
        "zh": Wording(
            "正在等待配件",
            "您的报修单 {order_id} 需要更换配件，配件已在调配中，预计 {expected} 前到达。"
            "配件到达后师傅将继续维修。",
        ),
        "en": Wording(
            "Waiting for parts",
            "Repair order {order_id} needs parts, which are on their way and expected by"
            " {expected}. The technician carries on once they arrive.",
        ),
    },
    Template.DEVICE_TO_WORKSHOP: {
        "zh": Wording(
            "设备已送修",
            "您的报修单 {order_id} 的设备已由师傅带回维修点检修，预计 {expected} 前修好送回。",
        ),
        "en": Wording(
            "Your appliance went to the workshop",
            "The technician has taken the appliance of repair order {order_id} to the workshop;"
            " it is expected back by {expected}.",
        ),
    },
    Template.DEVICE_BACK: {
        "zh": Wording(
            "设备已送回",
            "您的报修单 {order_id} 的设备已从维修点送回，师傅将完成后续维修。",
        ),
        "en": Wording(
            "Your appliance is back",
            "The appliance of repair order {order_id} is back from the workshop; the technician"
            " finishes the repair on site.",
        ),
    },
    Template.SAFETY_STOP: {
        "zh": Wording(
            "维修因安全原因暂停",
            "您的报修单 {order_id} 现场发现安全隐患，维修已暂停，主管正在处理。"
            "为了您的安全，请勿自行使用该设备，排除隐患后我们会通知您。",
        ),
        "en": Wording(
            "Work stopped for safety",
            "Work on repair order {order_id} has stopped: the technician found a safety hazard"
            " and a supervisor is dealing with it. For your safety, do not use the appliance;"
            " we will tell you once it is safe.",
        ),
    },
    Template.SAFETY_CLEARED: {
        "zh": Wording(
            "安全隐患已排除",
            "您的报修单 {order_id} 的安全隐患已排除，师傅将继续维修。",
        ),
        "en": Wording(
            "Safe to carry on",
            "The safety hazard on repair order {order_id} has been cleared; the technician"
            " carries on with the repair.",
        ),
    },
    Template.WORK_DONE: {
        "zh": Wording(
            "维修已完成，请验收",
            "您的报修单 {order_id} 已维修完成，费用合计 {total}。"
            "请确认验收，如有问题请直接提出；逾期未反馈将视为验收通过。",
        ),
        "en": Wording(
            "Repair finished: please accept",
            "The repair for order {order_id} is finished; the charges come to {total}."
            " Please accept the work or tell us what is wrong; if we hear nothing in time,"
            " the work counts as accepted.",
        ),
    },
    Template.SURVEY: {
        "zh": Wording(
            "邀请您评价本次服务",
            "感谢您使用我们的维修服务！请从服务态度、维修质量、维修效果和响应速度四个方面"
            "为报修单 {order_id} 打分（1–5 分），您的意见将帮助我们做得更好。",
        ),
        "en": Wording(
            "How did we do?",
            "Thank you for using our repair service. Please rate order {order_id} for"
            " attitude, quality, result and speed, from 1 to 5; your answers help us improve.",
        ),
    },
    Template.WARRANTY_REMINDER: {
        "zh": Wording(
            "保修期即将到期",
            "您的报修单 {order_id} 的维修保修期将于 {ends_at} 到期。"
            "到期前如同一故障再次出现，可免费报修。",
        ),
        "en": Wording(
            "Your repair warranty ends soon",
            "The repair warranty for order {order_id} ends on {ends_at}. If the same fault"
            " comes back before then, we repair it free of charge.",
        ),
    },
    Template.ORDER_CANCELLED: {
        "zh": Wording(
            "报修单已取消",
            "您的报修单 {order_id} 已取消，原因：{reason}。如需再次报修，欢迎随时联系我们。",
        ),
        "en": Wording(
            "Repair order cancelled",
            "Repair order {order_id} has been cancelled. Reason: {reason}."
            " Contact us any time if you need a repair again.",
        ),
    },
    Template.COMPLAINT_UPDATE: {
        "zh": Wording(
            "投诉处理进展",
            "您就报修单 {order_id} 提出的投诉（编号 {complaint_id}）有新进展：{update}",
        ),
        "en": Wording(
            "Update on your complaint",
            "Your complaint {complaint_id} about repair order {order_id} has an update: {update}",
        ),
    },
    # technician
    Template.JOB_OFFERED: {
        "zh": Wording(
            "新工单待接",
            "有新工单 {order_id} 派给您：{category}，区域 {region}，客户期望时间 {window}。"
            "请在 {deadline} 前接单或拒单，逾期将转派其他师傅。",
        ),
        "en": Wording(
            "New job offer",
            "Job {order_id} is offered to you: {category} in {region}, customer's preferred"
            " time {window}. Please accept or decline by {deadline}; after that it goes to"
            " another technician.",
        ),
    },
    Template.JOB_ASSIGNED: {
        "zh": Wording(
            "工单已派给您",
            "工单 {order_id} 已派给您，请尽快联系客户确认上门时间。",
        ),
        "en": Wording(
            "Job assigned to you",
            "Job {order_id} is assigned to you. Please contact the customer soon to agree"
            " a visit time.",
        ),
    },
    Template.CONTACT_CUSTOMER_REMINDER: {
        "zh": Wording(
            "请尽快联系客户",
            "工单 {order_id} 尚未确认上门时间，请在 {deadline} 前联系客户确认，"
            "逾期将转交客服跟进。",
        ),
        "en": Wording(
            "Reminder: contact the customer",
            "Job {order_id} has no agreed visit time yet. Please contact the customer by"
            " {deadline}; after that customer service takes over.",
        ),
    },
    Template.JOB_WITHDRAWN: {
        "zh": Wording(
            "工单已撤回",
            "工单 {order_id} 已从您的任务中撤回（{reason}），无需再上门。",
        ),
        "en": Wording(
            "Job withdrawn",
            "Job {order_id} has been withdrawn from you ({reason}); no visit is needed.",
        ),
    },
    Template.REWORK_REQUESTED: {
        "zh": Wording(
            "客户要求返修",
            "客户未通过工单 {order_id} 的验收，原因：{reason}。请尽快联系客户安排返修。",
        ),
        "en": Wording(
            "Rework requested",
            "The customer did not accept the work on job {order_id}. Reason: {reason}."
            " Please contact the customer to arrange the rework.",
        ),
    },
    Template.APPOINTMENT_CHANGED: {
        "zh": Wording(
            "客户已改约",
            "工单 {order_id} 的客户已改约，期望时间：{window}。请重新与客户确认上门时间。",
        ),
        "en": Wording(
            "The customer rescheduled",
            "The customer of job {order_id} asked for a new time: {window}."
            " Please confirm the visit with the customer again.",
        ),
    },
    # staff, supervisor, quality manager
    Template.COMPLAINT_FILED: {
        "zh": Wording(
            "新投诉待处理",
            "工单 {order_id} 收到新投诉（编号 {complaint_id}，类别：{category}），"
            "请在 {deadline} 前首次回复客户。",
        ),
        "en": Wording(
            "New complaint to answer",
            "Order {order_id} has a new complaint ({complaint_id}, category: {category})."
            " Please give the customer a first reply by {deadline}.",
        ),
    },
    Template.ESCALATION: {
        "zh": Wording(
            "工单已升级",
            "工单 {order_id} 已升级由您处理，原因：{reason}。请尽快跟进。",
        ),
        "en": Wording(
            "Order escalated to you",
            "Order {order_id} has been escalated to you. Reason: {reason}."
            " Please follow up promptly.",
        ),
    },
}

# Reasons the workflow passes as codes; any other reason is someone's own words, shown as is.
REASONS: Final[Mapping[str, Mapping[Locale, str]]] = {
    "cancelled": {"zh": "订单已取消", "en": "the order was cancelled"},
    "reassigned": {"zh": "已改派其他师傅", "en": "it was reassigned to another technician"},
    "response_overdue": {
        "zh": "超时无师傅接单",
        "en": "no technician has accepted the order in time",
    },
    "offer_expired": {"zh": "接单超时，已转派", "en": "the offer expired unanswered"},
    "no_technician": {
        "zh": "没有可派的合格师傅，请人工派单",
        "en": "no qualified technician is available; assign by hand",
    },
    "appointment_unconfirmed": {
        "zh": "师傅未按时与客户确认上门时间",
        "en": "the technician has not agreed a visit time with the customer",
    },
    "workshop_overdue": {"zh": "返厂维修超时", "en": "the workshop repair is overdue"},
    "parts_overdue": {"zh": "配件未按时到达", "en": "the parts have not arrived in time"},
    "safety_stop": {"zh": "现场存在安全隐患，已停工", "en": "work stopped for a safety hazard"},
    "quote_off_list": {
        "zh": "报价含价目表以外的工时费，需主管审批后才能发给客户",
        "en": "the quote has labour prices off the price list; approve them before the customer"
        " sees it",
    },
    "rework_limit": {
        "zh": "客户多次拒绝验收，需要改派",
        "en": "the customer rejected the rework again; reassign the order",
    },
}


CATEGORIES: Final[Mapping[str, Mapping[Locale, str]]] = {
    "air_conditioner": {"zh": "空调", "en": "air conditioner"},
    "refrigerator": {"zh": "冰箱", "en": "refrigerator"},
    "washing_machine": {"zh": "洗衣机", "en": "washing machine"},
    "television": {"zh": "电视", "en": "television"},
    "water_heater": {"zh": "热水器", "en": "water heater"},
    "range_hood": {"zh": "油烟机", "en": "range hood"},
    "gas_stove": {"zh": "燃气灶", "en": "gas stove"},
    "small_appliance": {"zh": "小家电", "en": "small appliance"},
    "electrical": {"zh": "电路", "en": "electrical work"},
    "plumbing": {"zh": "水路", "en": "plumbing"},
}


class Rendered(NamedTuple):
    subject: str
    body: str
    missing: tuple[str, ...]


class _Params(dict[str, str]):
    """The workflow's params; a name it did not pass renders as MISSING and is remembered."""

    def __init__(self, params: Mapping[str, str]) -> None:
        super().__init__(params)
        self.missing: dict[str, None] = {}

    def __missing__(self, name: str) -> str:
        self.missing[name] = None
        return MISSING


def render(template: Template, locale: Locale, params: Mapping[str, str]) -> Rendered:
    wording = TEMPLATES[template][locale]
    values = _Params(params)
    reason = params.get("reason")
    if reason is not None and reason in REASONS:
        values["reason"] = REASONS[reason][locale]
    category = params.get("category")
    if category is not None and category in CATEGORIES:
        values["category"] = CATEGORIES[category][locale]
    subject, body = wording.subject.format_map(values), wording.body.format_map(values)
    return Rendered(subject, body, tuple(values.missing))
