"""Customer tags that change how a utility treats a household (care visits, subsidies, priority)."""

from __future__ import annotations

from enum import StrEnum


class CustomerTag(StrEnum):
    ELDERLY_ALONE = "elderly_alone"  # 独居老人
    LOW_INCOME_SUBSIDY = "low_income_subsidy"  # 低保/困难补贴
    WITH_CHILDREN = "with_children"  # 有婴幼儿
    DISABILITY = "disability"  # 残障人士
    MEDICAL_EQUIPMENT = "medical_equipment"  # 家用医疗设备 (priority on outages)
    VIP = "vip"  # 重点客户
    SENSITIVE = "sensitive"  # 敏感客户 (complaint history)


TAG_LABELS_ZH = {
    CustomerTag.ELDERLY_ALONE: "独居老人",
    CustomerTag.LOW_INCOME_SUBSIDY: "低保困难户",
    CustomerTag.WITH_CHILDREN: "有婴幼儿",
    CustomerTag.DISABILITY: "残障人士",
    CustomerTag.MEDICAL_EQUIPMENT: "家用医疗设备",
    CustomerTag.VIP: "重点客户",
    CustomerTag.SENSITIVE: "敏感客户",
}
